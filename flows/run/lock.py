"""The pipeline lock: one writer at a time."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from flows.errors import PipelineBusy
from flows.run.private import ensure_home
from flows.settings import Settings

log = logging.getLogger(__name__)

LOCK_POLL_SECONDS = 0.5


@contextlib.contextmanager
def pipeline_lock(
    settings: Settings, *, wait: float = 0.0, holder: str = "expansion"
) -> Iterator[None]:
    """One writer at a time: an exclusive `flock` on `<home>/pipeline.lock`.

    The kernel releases the lock when its holder exits, however it exits (SIGKILL
    included), so a crashed run never blocks the next one; the file itself may stay. `wait`
    seconds: how long to wait for a running holder (0: fail at once) before PipelineBusy.
    `holder` says who holds it, for the message the waiting side prints.
    """
    path = ensure_home(settings) / "pipeline.lock"
    fh = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+")
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        announced = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                fh.seek(0)
                current = fh.read().strip() or "unknown"
                if time.monotonic() >= deadline:
                    waited = f"; waited {wait:g} s" if wait > 0 else ""
                    raise PipelineBusy(
                        f"another pipeline run holds {path} ({current}){waited}; "
                        "wait for it to finish"
                    ) from None
                if not announced:
                    log.warning("waiting up to %g s for %s to release %s", wait, current, path)
                    announced = True
                time.sleep(LOCK_POLL_SECONDS)
        fh.seek(0)
        fh.truncate()
        fh.write(f"{holder} pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}")
        fh.flush()
        yield
    finally:
        fh.close()
