"""Several processes at once on one project: real `expansion` commands, real readers.

- BI readers (a connection held open, a connection per read, a Parquet reader) while runs
  publish, two of them killed mid-publish: no reader ever gets an error or half a version
  (tests/e2e/test_pipeline.py checks the same for uninterrupted in-process runs);
- two `expansion run` started at once, each with its own temporary Prefect server: one runs,
  the other exits 5 at once saying who holds the lock; the extracts load once;
- `expansion sync` started while a run is between its dbt build and its publish: it waits for
  the run's lock instead of failing on the warehouse's file lock (or making the run fail), then
  finds nothing left to send: every record is in the ledger once;
- `expansion sync --wait 0` exits 5 while the lock is held; with a wait it goes on as soon as
  the lock is released.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from tests.reliability.faults_support import (
    Project,
    check_raw,
    check_serving,
    check_sync,
    deliver,
    finish,
    latest_run_id,
    ledger_files,
    leftovers,
    new_project,
    parquet_current,
    prefect_api,
    publication,
    requires_opt_in,
    run,
    run_records,
    start,
)

pytestmark = [pytest.mark.e2e, requires_opt_in]

LOCK_ERRORS = ("Could not set lock", "Conflicting lock", "IOException")


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    with prefect_api() as url:
        yield url


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, api: str) -> Project:
    """A project after its first complete run: a champion, a published version, a ledger."""
    project = new_project(tmp_path_factory, "concurrency-baseline", api)
    result = run(project, "run", label="baseline")
    assert result.returncode == 0, result.tail()
    return project


def _landing_files(project: Project) -> list[str]:
    return sorted(p.name for p in project.landing.rglob("*") if p.is_file())


def _wait_for(predicate: object, what: str, timeout: float = 600) -> None:
    """Poll for an event another process signals through a file (its log, its output)."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


# --- readers on the serving file while runs publish, some killed mid-publish -----------------

READER = """
import json, os, sys, time, pathlib
import duckdb
serving, stop, mode = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
parquet = serving.parent / "parquet" / "current"
held = duckdb.connect(str(serving), read_only=True) if mode == "hold" else None
seen, errors, reads = [], [], 0

def read_duckdb():
    c = held or duckdb.connect(str(serving), read_only=True)
    try:
        run_id, rows = c.execute(
            "select p.run_id, (select count(*) from account_scores) from _publication p"
        ).fetchone()
        hist = c.execute(
            "select count(*) from account_score_history where run_id = ?", [run_id]
        ).fetchone()[0]
    finally:
        if held is None:
            c.close()
    return run_id, rows, hist

def read_parquet():
    version = pathlib.Path(os.path.realpath(parquet))  # one version for the whole read
    c = duckdb.connect()
    try:
        scores = c.execute(
            f"select run_id, count(*) from '{version}/account_scores.parquet' group by 1"
        ).fetchall()
        if len(scores) != 1:
            raise AssertionError(f"scores of several runs in one version: {scores}")
        run_id, rows = scores[0]
        hist = c.execute(
            f"select count(*) from '{version}/account_score_history.parquet' where run_id = ?",
            [run_id],
        ).fetchone()[0]
    finally:
        c.close()
    return run_id, rows, hist

while not stop.exists():
    try:
        run_id, rows, hist = read_duckdb() if mode != "parquet" else read_parquet()
        if hist != rows or rows == 0:
            errors.append(f"half a version {run_id}: {rows} scores, {hist} in history")
        if not seen or seen[-1] != run_id:
            seen.append(run_id)
        reads += 1
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    if reads + len(errors) == 1:  # the first read is done (errors are reported at the end)
        print("ready", flush=True)
    time.sleep(0.05)
print(json.dumps({"reads": reads, "errors": errors[:20], "versions": seen}), flush=True)
"""


def test_readers_see_whole_versions_while_runs_publish_and_get_killed(
    baseline: Project, tmp_path: Path
) -> None:
    project = baseline.copy(tmp_path / "project")
    first = publication(project)
    assert first is not None
    stop = tmp_path / "stop"
    readers = {
        mode: subprocess.Popen(
            [sys.executable, "-c", READER, str(project.serving_db), str(stop), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("hold", "reconnect", "parquet")
    }
    runs: dict[str, str] = {}
    try:
        for mode, reader in readers.items():  # each has read the first version
            assert reader.stdout is not None
            assert reader.stdout.readline().strip() == "ready", (mode, reader.stderr)
        deliver(project, "2026-09")
        for point in ("publish.written", "publish.renamed"):
            result = run(project, "run", crash_at=point, label=point)
            assert result.returncode == -signal.SIGKILL, result.tail()
            runs[point] = latest_run_id(project)
        result = run(project, "run", label="after-kills")
        assert result.returncode == 0, result.tail()
        runs["after-kills"] = latest_run_id(project)
        deliver(project, "2026-10")
        result = run(project, "run", label="next-day")
        assert result.returncode == 0, result.tail()
        runs["next-day"] = latest_run_id(project)
    finally:
        stop.touch()
        results = {}
        for mode, reader in readers.items():
            out, err = reader.communicate(timeout=120)
            assert reader.returncode == 0, err
            results[mode] = json.loads(out.strip().splitlines()[-1])
    for mode, result in results.items():  # `pytest -rP` shows the figures
        print(f"reader {mode}: {result['reads']} reads, {len(result['versions'])} versions")
        assert result["errors"] == [] and result["reads"] > 20, (mode, result)
    # a held connection keeps the version it opened, whole, through every swap
    assert results["hold"]["versions"] == [first["run_id"]]
    # a new connection sees each version that was swapped in, in order, and never one that
    # was killed before its swap
    assert results["reconnect"]["versions"][0] == first["run_id"]
    assert runs["publish.written"] not in results["reconnect"]["versions"]
    assert runs["next-day"] == results["reconnect"]["versions"][-1]
    assert runs["publish.written"] not in results["parquet"]["versions"]
    assert runs["next-day"] == results["parquet"]["versions"][-1]
    check_serving(project)
    check_raw(project)
    check_sync(project, settled=True)
    assert leftovers(project) == []


# --- two runs started at once ------------------------------------------------------------------


def test_two_runs_started_at_once_one_runs_the_other_exits_5(
    baseline: Project, tmp_path: Path
) -> None:
    """Plain `expansion run` twice, each starting its own temporary Prefect server."""
    project = baseline.copy(tmp_path / "project")
    project.api_url = None
    earlier = set(run_records(project))
    deliver(project, "2026-09")
    env = {"PREFECT_HOME": str(project.home / "prefect")}
    logs = [tmp_path / "run-a.log", tmp_path / "run-b.log"]
    started = time.monotonic()
    procs = [start(project, "run", log=log, **env) for log in logs]
    results = [finish(p, started, log) for p, log in zip(procs, logs, strict=True)]

    codes = sorted(r.returncode for r in results)
    assert codes == [0, 5], [r.tail() for r in results]
    loser = max(results, key=lambda r: r.returncode)
    assert "another pipeline run holds" in loser.output
    assert str(project.home / "pipeline.lock") in loser.output.replace("\n", "")
    for result in results:
        assert not any(e in result.output for e in LOCK_ERRORS), result.tail()
    records = {k: v for k, v in run_records(project).items() if k not in earlier}
    assert len(records) == 2
    completed = [r for r in records.values() if r["status"] == "completed"]
    busy = [r for r in records.values() if "PipelineBusy" in (r.get("error") or "")]
    assert len(busy) == 1 and busy[0]["stages"] == {"total": busy[0]["stages"]["total"]}
    new = [r for r in completed if r["files_loaded"] > 0]
    assert len(completed) == 1 and len(new) == 1
    assert new[0]["files_loaded"] == 1  # the new month, loaded once
    assert publication(project)["run_id"] == new[0]["run_id"]  # type: ignore[index]
    assert parquet_current(project) == f"versions/{new[0]['run_id']}"
    check_raw(project)
    assert sorted(ledger_files(project)) == _landing_files(project)
    check_serving(project)
    check_sync(project, settled=True)
    assert leftovers(project) == []


# --- a sync while a run is on its way to publishing ---------------------------------------------


def _sync_runs(project: Project) -> list[tuple[str, str, datetime, datetime]]:
    con = duckdb.connect(str(project.warehouse), read_only=True)
    try:
        return con.execute(
            "select run_id, sync_name, started_at, finished_at from sync.runs order by started_at"
        ).fetchall()
    finally:
        con.close()


def _dbt_finished(log: str) -> bool:
    """The run's console says its dbt build stage ended: the stage's one line
    (`dbt_build   19.7 s  52 models built, ...`, flows/cli/console.py)."""
    return re.search(r"^dbt_build\s+[\d.]+ s", log, flags=re.M) is not None


def test_sync_during_a_run_waits_for_it_and_loses_nothing(
    baseline: Project, tmp_path: Path
) -> None:
    project = baseline.copy(tmp_path / "project")
    deliver(project, "2026-09")  # new scores: the run has records to send
    runs_before = {r[0] for r in _sync_runs(project)}
    run_log, sync_log = tmp_path / "run.log", tmp_path / "sync.log"
    started = time.monotonic()
    pipeline = start(project, "run", log=run_log)
    # the dbt build is done: marts gate, scoring, publish and the run's own sync are ahead
    _wait_for(lambda: _dbt_finished(run_log.read_text(errors="replace")), "the dbt build")
    assert pipeline.poll() is None
    sync = start(project, "sync", "--wait", "600", log=sync_log)
    ran = finish(pipeline, started, run_log)
    synced = finish(sync, started, sync_log)

    assert ran.returncode == 0, ran.tail()
    assert synced.returncode == 0, synced.tail()
    assert "waiting up to 600 s for pipeline run" in synced.output  # it overlapped the run
    for result in (ran, synced):
        assert not any(e in result.output for e in LOCK_ERRORS), result.tail()
    run_id = latest_run_id(project)
    assert run_records(project)[run_id]["status"] == "completed"
    # one writer at a time: the sync's ledger writes come after the run's
    rows = [r for r in _sync_runs(project) if r[0] not in runs_before]
    by_run = {r[0] for r in rows}
    assert len(by_run) == 2 and run_id in by_run
    manual = [r for r in rows if r[0] != run_id]
    assert min(r[2] for r in manual) >= max(r[3] for r in rows if r[0] == run_id)
    # the run sent the changes, the sync found nothing left: each record once in the ledger
    assert "crm_account_scores: sent 0 inserts, 0 updates, 0 deletes" in synced.output
    check_sync(project, settled=True)
    check_raw(project)


def test_sync_exits_5_or_waits_while_the_lock_is_held(baseline: Project, tmp_path: Path) -> None:
    project = baseline.copy(tmp_path / "project")
    lock = (project.home / "pipeline.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a stand-in for a running run
        lock.seek(0)
        lock.truncate()
        lock.write(f"pipeline run stand-in pid {os.getpid()}")
        lock.flush()
        at_once = run(project, "sync", "--wait", "0", label="sync-no-wait")
        assert at_once.returncode == 5, at_once.tail()
        assert "another pipeline run holds" in at_once.output
        assert "pipeline run stand-in" in at_once.output

        log = tmp_path / "sync-wait.log"
        started = time.monotonic()
        waiting = start(project, "sync", "--wait", "300", log=log)
        _wait_for(lambda: "waiting up to 300 s" in log.read_text(), "the sync to wait")
        assert waiting.poll() is None
    finally:
        lock.close()  # released: the waiting sync goes on
    result = finish(waiting, started, log)
    assert result.returncode == 0, result.tail()
    assert "crm_account_scores: sent 0 inserts" in result.output
