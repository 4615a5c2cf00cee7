"""No orphans: the temporary Prefect server dies with the run that started it.

Each test SIGKILLs a small Python process (the "run") that started a child the way Prefect's
`SubprocessASGIServer` starts uvicorn, through the `subprocess` that `flows.run.server.guard`
gives Prefect's server module, and shows the child is gone: at once (parent-death signal) or
at the next start (`reap` of the recorded children whose parent is gone). The child is a
sleeping Python process rather than a real server: starting uvicorn costs 10 s and proves
nothing more (the hook is the same `Popen` call).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flows.run import server

ROOT = Path(__file__).resolve().parents[2]

RUN = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    from flows.run.server import _GuardedSubprocess

    folder, where = Path(sys.argv[1]), sys.argv[2]
    guarded = _GuardedSubprocess(folder)

    def start():
        child = guarded.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        print(child.pid, flush=True)

    if where == "main":
        start()
    else:  # Prefect may start its server from another thread: no parent-death signal then
        t = threading.Thread(target=start)
        t.start()
        t.join()
    time.sleep(120)
    """
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="/proc and prctl are Linux's"
)


def _gone(pid: int, started: int | None, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not server.alive(pid, started):
            return True
        time.sleep(0.05)
    return False


def _killed_run(folder: Path, where: str) -> tuple[int, int | None]:
    """Start the run, wait for its child, SIGKILL the run; the child's pid and start time."""
    run = subprocess.Popen(
        [sys.executable, "-c", RUN, str(folder), where],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout is not None
        pid = int(run.stdout.readline())
        started = server.start_time(pid)
        assert started is not None and (folder / f"{pid}.json").is_file()
    finally:
        run.kill()  # SIGKILL: no atexit, no finally in the run
        run.wait()
    return pid, started


def test_the_server_dies_with_the_run_that_started_it(tmp_path: Path) -> None:
    pid, started = _killed_run(tmp_path / "servers", "main")
    assert _gone(pid, started), f"pid {pid} outlived its run"


def test_a_server_left_by_a_killed_run_is_reaped_at_the_next_start(tmp_path: Path) -> None:
    folder = tmp_path / "servers"
    pid, started = _killed_run(folder, "thread")
    try:
        assert server.alive(pid, started)  # no parent-death signal from a thread
        record = json.loads((folder / f"{pid}.json").read_text())
        assert record["pid"] == pid and record["cmdline"][0] == sys.executable
        done = server.reap(folder)  # the next start
        assert _gone(pid, started, 1.0)
        assert done and str(pid) in done[0] and not (folder / f"{pid}.json").exists()
    finally:
        if server.alive(pid, started):
            os.kill(pid, signal.SIGKILL)


def test_a_server_whose_run_still_runs_is_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "servers"
    child = server._GuardedSubprocess(folder).Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    try:
        assert server.reap(folder) == []  # its parent (this test) runs: not an orphan
        assert child.poll() is None and (folder / f"{child.pid}.json").is_file()
    finally:
        child.kill()
        child.wait()
    assert server.reap(folder) == [] and not list(folder.glob("*.json"))  # gone: forgotten


def test_guard_reaches_prefects_server_module_when_it_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fake_prefect_server.py").write_text("import subprocess\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(server, "SERVER_MODULE", "fake_prefect_server")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    server.guard()
    import fake_prefect_server  # type: ignore[import-not-found]

    assert isinstance(fake_prefect_server.subprocess, server._GuardedSubprocess)
    assert fake_prefect_server.subprocess.TimeoutExpired is subprocess.TimeoutExpired
    sys.modules.pop("fake_prefect_server", None)
