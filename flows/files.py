"""Files written whole: a reader (or a run killed mid-write) sees the old content or the new,
never half of either. With `registry.py`, the only modules here that write files (both are
I/O for the flows: they are to move to `flows/`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, MutableMapping
from pathlib import Path


def write_atomic(path: Path, text: str) -> Path:
    """Write `text` to a temporary file beside `path`, flush it to disk, rename it over `path`.

    The temporary name is unique, so concurrent writers of the same path do not clash (the
    last rename wins); it is removed when the write fails.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


class JsonFileCache(MutableMapping[str, str]):
    """A directory of JSON documents as a mapping: entry `key` is the file `<key>.json`,
    holding the value's text as given, written whole (`write_atomic`).

    The `chart_cache` of `models.report.render_report` in the pipeline (<home>/reports/.charts:
    one `<version>-<chart code version>.json` per model). An entry that cannot be read counts
    as missing; the directory is created on the first write.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        if not key or key.startswith(".") or "/" in key or os.sep in key:
            raise ValueError(f"cache key {key!r} is not a plain file name")
        return self.directory / f"{key}.json"

    def __getitem__(self, key: str) -> str:
        try:
            return self._path(key).read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:  # absent, unreadable or not a file name
            raise KeyError(key) from exc

    def __setitem__(self, key: str, value: str) -> None:
        write_atomic(self._path(key), value)

    def __delitem__(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError as exc:
            raise KeyError(key) from exc

    def __iter__(self) -> Iterator[str]:
        if not self.directory.is_dir():
            return iter(())
        names = (p for p in self.directory.glob("*.json") if not p.name.startswith("."))
        return iter(sorted(p.stem for p in names if p.is_file()))

    def __len__(self) -> int:
        return sum(1 for _ in self)
