"""No orphans: the temporary Prefect server dies with the process that started it.

Without `PREFECT_API_URL`, Prefect starts a temporary API server (`python -m uvicorn ...`,
`prefect.server.api.server.SubprocessASGIServer`) and stops it at exit (`atexit`). A run
killed with SIGKILL runs no `atexit`: the server lived on, holding its port and the Prefect
database, past the next run. Two mechanisms, installed by `guard` (from
`flows.prefect_env.configure`, before Prefect is imported by anything else):

1. A parent-death signal: the server is started with `prctl(PR_SET_PDEATHSIG, SIGTERM)` (Linux),
   so the kernel sends it SIGTERM the moment its parent dies, however it dies. Linux sends
   it when the *thread* that started the child ends, so it is set only when the main thread
   starts the server (the main thread ends with the process); a server started from another
   thread relies on 2.
2. A record and a reaper: each server started is recorded in `<PREFECT_HOME>/servers/<pid>.json`
   (its pid, start time and command line, and those of its parent). At the next start,
   `reap` stops every recorded server whose parent is gone (SIGTERM, then SIGKILL after
   `STOP_SECONDS`) and forgets records whose server is gone. A process is matched by pid
   *and* start time (`/proc/<pid>/stat`), so a reused pid is never signalled; a server whose
   parent still runs (a concurrent command) is left alone.

Prefect's `SubprocessASGIServer` has no hook for the child's start: `guard` gives its module
a `subprocess` whose `Popen` adds the hook and writes the record; nothing else in Prefect
changes. On systems without `/proc` or `prctl` (macOS) both are skipped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

from flows.files import write_atomic

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
STOP_SECONDS = 5.0
RECORDS = "servers"


def _prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def start_time(pid: int) -> int | None:
    """The start time of process `pid` (clock ticks since boot), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has ended; only its parent's wait is missing
        return None
    return int(fields[19])  # field 22 of proc(5), counted after the name


def alive(pid: int, started: int | None) -> bool:
    """Whether process `pid` is the one that started at `started` and still runs."""
    return started is not None and start_time(pid) == started


def die_with_parent(parent: int) -> None:
    """In a child, before exec: SIGTERM when `parent` (the thread that forked) dies."""
    if _PRCTL is None:
        return
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)


def record(folder: Path, child: subprocess.Popen[Any], args: Any) -> Path | None:
    """Write the record of `child`, a server this process started."""
    started = start_time(child.pid)
    if started is None:
        return None
    me = os.getpid()
    doc = {
        "pid": child.pid,
        "start_time": started,
        "cmdline": [str(a) for a in args] if isinstance(args, list | tuple) else str(args),
        "parent_pid": me,
        "parent_start_time": start_time(me),
    }
    return write_atomic(folder / f"{child.pid}.json", json.dumps(doc))


def _stop(pid: int, started: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while alive(pid, started) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid, started):
        os.kill(pid, signal.SIGKILL)


def reap(folder: Path) -> list[str]:
    """Stop the recorded servers whose parent is gone; forget those that are gone."""
    done: list[str] = []
    if not folder.is_dir():
        return done
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            pid, started = int(doc["pid"]), doc.get("start_time")
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if not alive(pid, started):
            path.unlink(missing_ok=True)
            continue
        if alive(int(doc.get("parent_pid") or 0), doc.get("parent_start_time")):
            continue  # its run is still going: not an orphan
        try:
            _stop(pid, int(started))
        except ProcessLookupError:
            pass
        except PermissionError as exc:  # not ours after all: leave it, say so
            log.warning("cannot stop orphaned Prefect server pid %s: %s", pid, exc)
            continue
        path.unlink(missing_ok=True)
        done.append(f"stopped the orphaned Prefect server pid {pid} ({doc.get('cmdline')})")
        log.warning("%s: the run that started it was killed", done[-1])
    return done


class _GuardedSubprocess(types.ModuleType):
    """`subprocess` for Prefect's server module: its Popen arms the parent-death signal and
    records the child; everything else is the real module."""

    def __init__(self, folder: Path) -> None:
        super().__init__("subprocess")
        self._folder = folder

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    def Popen(self, args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        if threading.current_thread() is threading.main_thread() and _PRCTL is not None:
            parent, hook = os.getpid(), kwargs.get("preexec_fn")

            def preexec() -> None:
                die_with_parent(parent)
                if hook is not None:
                    hook()

            kwargs["preexec_fn"] = preexec
        child = subprocess.Popen(args, **kwargs)
        try:
            record(self._folder, child, args)
        except OSError as exc:  # the server runs; only the record is missing
            log.warning("could not record the Prefect server pid %s: %s", child.pid, exc)
        return child


def records_dir() -> Path:
    """Where server records go: `<PREFECT_HOME>/servers`."""
    home = os.environ.get("PREFECT_HOME") or str(Path.home() / ".prefect")
    return Path(home).expanduser() / RECORDS


SERVER_MODULE = "prefect.server.api.server"


def _install(module: types.ModuleType, folder: Path) -> None:
    if not isinstance(getattr(module, "subprocess", None), _GuardedSubprocess):
        module.subprocess = _GuardedSubprocess(folder)  # type: ignore[attr-defined]


class _OnImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Installs the guard when Prefect imports its server module (a 5 s import that commands
    without a flow never pay)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.loader: Any = None

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != SERVER_MODULE:
            return None
        sys.meta_path.remove(self)  # one module, once: find it the ordinary way
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        self.loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_module(module)
        _install(module, self.folder)


def guard() -> list[str]:
    """Reap servers orphaned by killed runs; make the next server die with this process
    (installed now if Prefect's server module is loaded, else when it is)."""
    folder = records_dir()
    done = reap(folder)
    if SERVER_MODULE in sys.modules:
        _install(sys.modules[SERVER_MODULE], folder)
    elif not any(isinstance(f, _OnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _OnImport(folder))
    return done
