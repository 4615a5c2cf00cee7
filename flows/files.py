"""Files written whole: a reader (or a run killed mid-write) sees the old content or the new,
never half of either. With `registry.py`, the only modules here that write files (both are
I/O for the flows: they are to move to `flows/`).

Private state is created owner-only: folders `0700` (`private_dir`), files `0600`
(`write_atomic`'s default mode), whatever the process umask. Serving files are the exception,
made readable on purpose (`readable`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from collections.abc import Iterator, MutableMapping
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
READABLE_DIR = 0o755
READABLE_FILE = 0o644
PRIVATE_UMASK = 0o077


def restrict_umask() -> int:
    """Make every file and folder this process (and its children) creates owner-only."""
    return os.umask(PRIVATE_UMASK)


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Owner-only creation inside the block (for code that runs outside the CLI)."""
    old = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(old)


def private_dir(path: Path) -> Path:
    """Create folder `path` and its missing parents `0700` (an existing one is left as it is)."""
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:  # made by a concurrent writer, or not a folder (mkdir says)
            if not folder.is_dir():
                raise
            continue
        os.chmod(folder, PRIVATE_DIR)  # the umask may have taken bits we asked for: exact mode
    return path


def readable(path: Path) -> Path:
    """Make `path` (and, for a folder, everything under it) readable by every local user:
    serving files, published for BI, are the only state that is, on purpose."""
    path = Path(path)
    if not path.exists() or path.is_symlink():
        return path
    entries = [path, *path.rglob("*")] if path.is_dir() else [path]
    for entry in entries:
        if entry.is_symlink():
            continue
        mode = READABLE_DIR if entry.is_dir() else READABLE_FILE
        if stat.S_IMODE(entry.stat().st_mode) != mode:
            os.chmod(entry, mode)
    return path


def write_atomic(path: Path, text: str, *, mode: int = PRIVATE_FILE) -> Path:
    """Write `text` to a temporary file beside `path`, flush it to disk, rename it over `path`.

    The temporary name is unique, so concurrent writers of the same path do not clash (the
    last rename wins); it is removed when the write fails. The file gets `mode` (default
    `0600`: private state); missing folders are created `0700`.
    """
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
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
