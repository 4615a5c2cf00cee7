"""Files written whole: a reader (or a run killed mid-write) sees the old content or the new,
never half of either."""

from __future__ import annotations

import os
import uuid
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
