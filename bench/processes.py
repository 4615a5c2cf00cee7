"""The benchmark's driver side of processes: the code it runs (this checkout or its last
commit), worker processes with their wall, peak memory of their process tree and what the
kernel said when it killed one, a Prefect server of its own, and the real `expansion`
commands (`run`, `backfill`) timed from outside."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / "work"


def _python() -> str:
    return sys.executable


def _git(*args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(PROJECT_DIR), *args], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def source_tree(code: str) -> tuple[Path, dict[str, Any]]:
    """Where the pipeline code the benchmark runs comes from.

    `worktree`: this checkout as it is, uncommitted changes included. `head`: the last commit,
    exported with `git archive` to bench/work/src-<sha>/ (this benchmark's own files copied in),
    so edits in progress in the checkout do not change what is measured."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        dirty = [line for line in _git("status", "--porcelain").splitlines() if line]
    except (OSError, subprocess.CalledProcessError):
        if code == "head":
            raise SystemExit("--code head needs a git checkout") from None
        return PROJECT_DIR, {"code": code, "commit": "unknown (not a git checkout)"}
    info: dict[str, Any] = {"code": code, "commit": commit}
    if code == "worktree":
        info["uncommitted_paths"] = len(dirty)
        return PROJECT_DIR, info
    dest = WORK_DIR / f"src-{commit}"
    if not (dest / "flows").is_dir():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(PROJECT_DIR), "archive", "HEAD"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    (dest / "bench").mkdir(exist_ok=True)
    for f in BENCH_DIR.glob("*.py"):
        shutil.copy2(f, dest / "bench" / f.name)
    return dest, info


def run_worker(args: list[str], env: dict[str, str], log: Path, timeout: float) -> dict[str, Any]:
    """Run a worker; exit code, wall, whether it timed out, the peak RSS of its process tree
    (sampled every 50 ms, so there is a number even for a stage that never finished) and, when
    the kernel's OOM killer ended it, what the kernel reported."""
    from bench.measure import TreeSampler

    cwd = Path(env.get("PYTHONPATH") or PROJECT_DIR)
    t0 = time.perf_counter()
    timed_out = False
    with log.open("a") as fh:
        fh.write(f"\n=== {' '.join(args)} at {datetime.now(UTC).isoformat()}\n")
        fh.flush()
        proc = subprocess.Popen(
            [_python(), "-m", "bench.pipeline_bench", *args],
            cwd=cwd,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _oom_first(proc.pid)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, 15)
            time.sleep(5)
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
            code = proc.wait()
        peak = sampler.stop()
    out: dict[str, Any] = {
        "code": code,
        "wall_s": time.perf_counter() - t0,
        "timed_out": timed_out,
        "tree_peak_rss_mb": round(peak, 1),
    }
    if code == -9 and not timed_out:
        out["oom"] = _oom_report(proc.pid)
    return out


def _oom_report(pid: int) -> str | None:
    """The kernel's line about killing `pid` for lack of memory, if dmesg can be read."""
    try:
        text = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    hits = [ln.strip() for ln in text.splitlines() if f"Killed process {pid} " in ln]
    return hits[-1] if hits else None


def _oom_first(pid: int) -> None:
    """On a shared machine, a benchmark that runs out of memory should be the process the
    kernel kills, not someone else's."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/oom_score_adj").write_text("1000")


@contextlib.contextmanager
def prefect_server(env: dict[str, str], home: Path, log: Path) -> Any:
    """A Prefect API server of its own (SQLite under the scratch home), as a deployment's runs
    report to: yields its API URL once /api/health answers; stopped afterwards."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    server_env = {**env, "PREFECT_HOME": str(home / "prefect-server")}
    with log.open("a") as fh:
        proc = subprocess.Popen(
            [
                str(Path(_python()).parent / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=server_env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server did not start; see {log}")
            time.sleep(1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


EXPANSION_CLI = "from flows.cli import app; app()"  # the CLI of the code measured (PYTHONPATH)


def run_command(
    args: list[str],
    env: dict[str, str],
    log: Path,
    timeout: float,
    stdout: Path | None = None,
) -> dict[str, Any]:
    """An `expansion` command of the code measured, in a child process: exit code, wall, CPU
    and the peak RSS of its process tree (sampled every 50 ms). Its output goes to the log,
    or its stdout to `stdout` when given."""
    import resource

    from bench.measure import TreeSampler

    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with log.open("a") as fh, contextlib.ExitStack() as stack:
        fh.write(f"\n=== expansion {' '.join(args)} at {datetime.now(UTC).isoformat()}\n")
        fh.flush()
        out = stack.enter_context(stdout.open("w")) if stdout else fh
        proc = subprocess.Popen(
            [_python(), "-c", EXPANSION_CLI, *args],
            cwd=Path(env.get("PYTHONPATH") or PROJECT_DIR),
            env=env,
            stdout=out,
            stderr=fh,
            start_new_session=True,
        )
        _oom_first(proc.pid)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            code = proc.wait()
        peak = sampler.stop()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "exit_code": code,
        "wall_s": round(time.perf_counter() - t0, 3),
        "cpu_s": round((kids.ru_utime + kids.ru_stime) - (kids0.ru_utime + kids0.ru_stime), 3),
        "peak_rss_mb": round(peak, 1),
        "peak_method": "process tree RSS sampled every 50 ms",
    }


def prefect_run(
    env: dict[str, str], home: Path, log: Path, timeout: float, api_url: str | None = None
) -> dict[str, Any]:
    """`expansion run --json`, and the flow's own stage timings from its run record. Without
    `api_url` the command starts Prefect's temporary server itself (as `make run` does); with
    it, it reports to that server (as a scheduled deployment does)."""
    before = set(p.name for p in (home / "runs").glob("*.json"))
    run_env = {**env, "PREFECT_API_URL": api_url} if api_url else env
    measured = run_command(["run", "--json"], run_env, log, timeout)
    new = [p for p in (home / "runs").glob("*.json") if p.name not in before]
    record = json.loads(max(new, key=lambda p: p.stat().st_mtime).read_text()) if new else {}
    stage_s = {k: v for k, v in (record.get("stages") or {}).items() if k != "total"}
    wall = measured["wall_s"]
    return {
        **measured,
        "status": record.get("status", "no run record"),
        "as_of": record.get("as_of"),
        "flow_stage_seconds": stage_s,
        "flow_total_s": (record.get("stages") or {}).get("total"),
        "stage_sum_s": round(sum(stage_s.values()), 2),
        "fixed_overhead_s": round(wall - sum(stage_s.values()), 2),
        "dbt_parse_s": (record.get("dbt") or {}).get("parse_s"),
        "dbt": record.get("dbt") or {},
        "api": "a running Prefect server" if api_url else "Prefect's temporary server",
        "overhead_note": (
            "wall of `expansion run` (process start, imports, "
            + ("" if api_url else "Prefect's temporary API server, ")
            + "flow and task runs, artifacts) minus the sum of the stage timings the flow records"
        ),
        "rows_loaded": record.get("rows_loaded"),
        "accounts_scored": record.get("accounts_scored"),
        "error": record.get("error"),
    }


def backfill_command(
    env: dict[str, str], work: Path, log: Path, timeout: float, dates: list[str]
) -> dict[str, Any]:
    """`expansion backfill --start --end --every month --json` (Prefect's temporary server),
    its fixed and per-date time from the runs it prints."""
    from bench.backfill import from_command_output

    out = work / "backfill_command.json"
    args = ["backfill", "--start", dates[0], "--end", dates[-1], "--every", "month", "--json"]
    measured = run_command(args, env, log, timeout, stdout=out)
    text = out.read_text() if out.exists() else ""
    try:  # the JSON follows the command's own progress lines
        data = json.loads(text[json_start(text) :])
    except ValueError:
        data = None
    result: dict[str, Any] = {"stage": "backfill_prefect", "dates": dates, **measured}
    if data is None:
        result["status"] = f"no JSON output (exit {measured['exit_code']}); see {log}"
        return result
    result |= from_command_output(data)
    result["status"] = "completed" if measured["exit_code"] == 0 else "failed"
    result["overhead_s"] = round(
        measured["wall_s"] - result["fixed_s"] - result["per_date_total_s"], 2
    )
    return result


def json_start(text: str) -> int:
    """Where the JSON document starts in a command's stdout (after its progress lines)."""
    offset = 0
    for line in text.splitlines(keepends=True):
        if line.startswith(("[", "{")):
            return offset
        offset += len(line)
    raise ValueError("no JSON in the output")
