"""A real `expansion run` SIGKILLed at every named crash point (flows/faults.py), then run again.

After each kill: raw history has no duplicate and no half-loaded file (raw rows per file are
exactly the ledger's), the serving file is byte for byte the last good version (absent when
there never was one) or, after the swap, a whole new version, the champion is unchanged unless
the kill came after the promotion, and every record the sync ledger says a destination
accepted is at the destination. After the next, uninterrupted run: everything delivered is
loaded once, that run's version is published (DuckDB file and Parquet), the destination holds
exactly what the ledger says and what the serving file says, no temp file is left and the
killed runs are recorded as interrupted.

To keep it affordable the kills are chained: each crashing run starts from what the previous
one left, so it also proves that the earlier stages recover (a run killed at dbt passes
through the load a previous kill interrupted). Two chains: the very first run of a project
(nothing loaded, no champion, nothing published) and the daily run after it (new usage
extracts, a champion, a published version, a sync ledger).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.reliability.faults_support import (
    PROJECT_DIR,
    Project,
    champion,
    check_raw,
    check_serving,
    check_sync,
    deliver,
    latest_run_id,
    ledger_files,
    leftovers,
    model_versions,
    new_project,
    parquet_current,
    pending_changes,
    prefect_api,
    publication,
    raw_counts,
    requires_opt_in,
    run,
    run_records,
    sha,
)

e2e = [pytest.mark.e2e, requires_opt_in]


@dataclass(frozen=True)
class Case:
    point: str
    loaded: bool  # the kill came after the load committed: the new files are in raw
    gated: bool = False  # ... and after the raw gate: every load so far has been checked
    published: bool = False  # ... after the serving file was swapped in
    promoted: bool = False  # ... right after a promotion
    trains: bool = False  # a new model is saved (not promoted)
    deliver: str | None = None  # usage month that arrives before this run
    args: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.point


# The first run of a project, killed at every stage, each run starting from what the last left.
FIRST_RUN = [
    Case("load.raw_inserted.crm__accounts", loaded=False),  # mid-way through the raw inserts
    Case("load.committed", loaded=True),  # loaded, never gated
    Case("dbt.before_build", loaded=True, gated=True),  # the gate checks the earlier load
    Case("dbt.mid_build", loaded=True, gated=True),
    Case("dbt.built", loaded=True, gated=True),
    Case("validate.marts_passed", loaded=True, gated=True),
    Case("train.saved", loaded=True, gated=True, trains=True),
    Case("train.promoted", loaded=True, gated=True, promoted=True),
    Case("score.written", loaded=True, gated=True),
    Case("publish.written", loaded=True, gated=True),
    Case("publish.renamed", loaded=True, gated=True, published=True),
    Case("sync.accepted.crm_account_scores", loaded=True, gated=True, published=True),
]

# The daily run: a champion, a published version and a sync ledger exist; new extracts arrive.
DAILY = [
    # every raw insert done, no ledger row yet
    Case("load.raw_inserted.usage__usage_daily", loaded=False, deliver="2026-09"),
    Case("publish.written", loaded=True, gated=True),
    Case("sync.accepted.crm_account_scores", loaded=True, gated=True, published=True),
    Case("sync.recorded.crm_account_scores", loaded=True, gated=True, published=True),
    Case("dbt.mid_build", loaded=True, gated=True, deliver="2026-10"),  # incremental model
    # a retrain on the new months (the champion was trained before they came)
    Case("train.saved", loaded=True, gated=True, trains=True, args=("--retrain",)),
]


@dataclass
class Before:
    ledger: list[str]
    raw: dict[str, int]
    serving: str | None
    current: str | None
    champion: str | None
    models: list[str]


def _before(project: Project) -> Before:
    return Before(
        ledger_files(project),
        raw_counts(project),
        sha(project.serving_db),
        parquet_current(project),
        champion(project),
        model_versions(project),
    )


def _landing_files(project: Project) -> list[str]:
    return sorted(p.name for p in project.landing.rglob("*") if p.is_file())


def _raw_checked(project: Project) -> set[str]:
    con = duckdb.connect(str(project.warehouse), read_only=True)
    try:
        return {r[0] for r in con.execute("select run_id from quality.raw_checked").fetchall()}
    finally:
        con.close()


def _raw_rows_gated(project: Project, run_id: str) -> dict[str, int]:
    """Raw table -> rows the raw gate of `run_id` validated (quality.gate_history)."""
    con = duckdb.connect(str(project.warehouse), read_only=True)
    try:
        rows = con.execute(
            "select table_name, row_count from quality.gate_history "
            "where run_id = ? and edge = 'raw'",
            [run_id],
        ).fetchall()
    finally:
        con.close()
    return {str(table).removeprefix("raw."): int(n) for table, n in rows}


def _ledger_runs(project: Project) -> set[str]:
    con = duckdb.connect(str(project.warehouse), read_only=True)
    try:
        return {r[0] for r in con.execute("select run_id from raw._load_ledger").fetchall()}
    finally:
        con.close()


def _has(project: Project, relation: str) -> bool:
    schema, name = relation.split(".")
    con = duckdb.connect(str(project.warehouse), read_only=True)
    try:
        return bool(
            con.execute(
                "select 1 from information_schema.tables where table_schema = ? and table_name = ?",
                [schema, name],
            ).fetchall()
        )
    finally:
        con.close()


def crash_and_check(project: Project, case: Case, killed: list[str]) -> None:
    before = _before(project)
    if case.deliver:
        deliver(project, case.deliver)
    result = run(project, "run", *case.args, crash_at=case.point, label=case.point)
    assert result.returncode == -signal.SIGKILL, result.tail()
    assert f"crash point {case.point}: SIGKILL" in result.output
    run_id = latest_run_id(project)
    assert run_records(project)[run_id]["status"] == "running"  # it never got to say more
    killed.append(run_id)

    # raw: all of this run's load or none of it, never a file twice
    check_raw(project)
    arrived = set(_landing_files(project)) - set(before.ledger)
    if case.loaded:
        assert sorted(ledger_files(project)) == _landing_files(project)
        grew = sum(raw_counts(project).values()) > sum(before.raw.values())
        assert grew == bool(arrived)
    else:
        assert ledger_files(project) == before.ledger
        assert raw_counts(project) == before.raw
    if case.loaded and not case.gated:
        assert run_id not in _raw_checked(project)
    if case.gated:  # this run's gate also checked what a killed run loaded and never gated
        assert _ledger_runs(project) <= _raw_checked(project)
    if case.point == "dbt.before_build":  # the run before loaded everything, then was killed
        assert arrived == set()  # nothing new for this run to load, and yet its gate
        gated = _raw_rows_gated(project, run_id)  # validated every raw row of that load
        assert gated and gated == {t: n for t, n in raw_counts(project).items() if t in gated}

    # serving: the last good version, byte for byte, until the swap; then a whole new one
    check_serving(project)
    if case.published:
        pub = publication(project)
        assert pub is not None and pub["run_id"] == run_id
        assert pub["parquet_version"] == run_id
        if case.point == "publish.renamed":  # the Parquet swap comes next: still the old one
            assert parquet_current(project) == before.current
        else:  # including after a kill between the two swaps in the run before
            assert parquet_current(project) == f"versions/{run_id}"
    else:
        assert sha(project.serving_db) == before.serving
        assert parquet_current(project) == before.current

    # champion: unchanged unless the kill came after the promotion
    if case.promoted:
        assert before.champion is None  # the first promotion
        assert champion(project) in model_versions(project)
        from flows.registry import champion_history

        assert champion_history(project.registry)[-1]["version"] == champion(project)
    else:
        assert champion(project) == before.champion
    if case.trains:
        assert len(model_versions(project)) == len(before.models) + 1

    # the destinations hold at least what the ledger says they accepted
    check_sync(project, settled=False)
    if case.point.startswith("sync.accepted."):
        name = case.point.removeprefix("sync.accepted.")
        assert pending_changes(project)[name] > 0  # accepted, not recorded: sent again next run
    if case.point.startswith("sync.recorded."):
        name = case.point.removeprefix("sync.recorded.")
        assert pending_changes(project)[name] == 0

    if case.point == "dbt.mid_build":  # the incremental staging model was written, not all
        assert _has(project, "staging.stg_usage__usage_daily")


def recover_and_check(project: Project, killed: list[str], *args: str) -> dict[str, Any]:
    result = run(project, "run", *args, label="recovery")
    assert result.returncode == 0, result.tail()
    run_id = latest_run_id(project)
    records = run_records(project)
    assert records[run_id]["status"] == "completed"
    assert {r: records[r]["status"] for r in killed} == dict.fromkeys(killed, "interrupted")

    check_raw(project)
    assert sorted(ledger_files(project)) == _landing_files(project)  # everything, once
    assert _ledger_runs(project) <= _raw_checked(project)
    check_serving(project)
    pub = publication(project)
    assert pub is not None and pub["run_id"] == run_id
    assert parquet_current(project) == f"versions/{run_id}"
    assert champion(project) is not None and pub["model_version"] == champion(project)
    check_sync(project, settled=True)
    assert leftovers(project) == []
    return records[run_id]


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    with prefect_api() as url:
        yield url


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory, api: str) -> Project:
    return new_project(tmp_path_factory, "faults-first", api)


@pytest.fixture(scope="module")
def killed() -> list[str]:
    return []


@pytest.mark.parametrize("case", FIRST_RUN, ids=str)
@pytest.mark.e2e
@requires_opt_in
def test_first_run_killed_at(case: Case, first: Project, killed: list[str]) -> None:
    crash_and_check(first, case, killed)


@pytest.mark.e2e
@requires_opt_in
def test_first_run_completes_after_the_kills(first: Project, killed: list[str]) -> None:
    assert len(killed) == len(FIRST_RUN)
    record = recover_and_check(first, killed)
    # The champion promoted just before a kill is the one everything was scored with.
    assert record["model"]["trained_version"] is None
    killed.clear()


@pytest.mark.parametrize("case", DAILY, ids=str)
@pytest.mark.e2e
@requires_opt_in
def test_daily_run_killed_at(case: Case, first: Project, killed: list[str]) -> None:
    crash_and_check(first, case, killed)


@pytest.mark.e2e
@requires_opt_in
def test_daily_run_completes_after_the_kills(first: Project, killed: list[str]) -> None:
    assert len(killed) == len(DAILY)
    champion_before = champion(first)
    record = recover_and_check(first, killed, "--retrain")
    trained = record["model"]["trained_version"]
    assert trained in model_versions(first)
    assert champion(first) in {champion_before, trained}  # promoted only if it won


# --- the registry's pointer and history: a kill between the two writes ------------------------

KILL_BETWEEN_POINTER_AND_HISTORY = """
import os, signal, sys
from pathlib import Path
import flows.registry as registry

root = Path(sys.argv[1])
registry.promote(root, "v0001-20260101T000000Z")
registry._append_history = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
registry.promote(root, "v0002-20260102T000000Z")
"""


def test_a_kill_between_champion_pointer_and_history_loses_nothing(tmp_path: Path) -> None:
    from flows.registry import champion_history, champion_version, rollback

    for version in ("v0001-20260101T000000Z", "v0002-20260102T000000Z"):
        (tmp_path / "models" / version).mkdir(parents=True)
        (tmp_path / "models" / version / "metadata.json").write_text("{}")
    proc = subprocess.run(
        [sys.executable, "-c", KILL_BETWEEN_POINTER_AND_HISTORY, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # the pointer is whole and new; history.jsonl lacks its line, the pointer carries it
    assert json.loads((tmp_path / "champion.json").read_text())["version"].startswith("v0002")
    assert len((tmp_path / "history.jsonl").read_text().splitlines()) == 1
    assert [e["version"] for e in champion_history(tmp_path)] == [
        "v0001-20260101T000000Z",
        "v0002-20260102T000000Z",
    ]
    assert rollback(tmp_path) == "v0001-20260101T000000Z"  # knows what v0002 replaced
    assert champion_version(tmp_path) == "v0001-20260101T000000Z"
    assert [e["action"] for e in champion_history(tmp_path)] == ["promote", "promote", "rollback"]
    assert len((tmp_path / "history.jsonl").read_text().splitlines()) == 3  # repaired on disk


# --- alerts: a rerun of a date (after a kill, say) must not create a second task ---------------


def test_rescoring_a_date_keeps_its_alert_ids(tmp_path: Path) -> None:
    from flows.modelling.score import record_alerts
    from flows.settings import Settings

    settings = Settings(home=tmp_path, alert_probability_threshold=0.3)
    columns = (
        "account_id varchar, account_name varchar, owner_name varchar, as_of date, "
        "touch_tier varchar, p_expansion double, is_suppressed boolean, "
        "next_best_offer varchar, reason_1 varchar, run_id varchar, scored_at timestamp"
    )

    def score(run_id: str, as_of: str, p: float, at: str) -> None:
        con = duckdb.connect(str(settings.warehouse))
        con.execute("create schema if not exists scores")
        con.execute(f"create or replace table scores.account_scores ({columns})")
        con.execute(f"create table if not exists scores.account_score_history ({columns})")
        con.execute("delete from scores.account_score_history where as_of = ?", [as_of])
        row = ["A", "Acme", "Jo", as_of, "low_touch", p, False, "seats", "why", run_id, at]
        con.execute("insert into scores.account_scores values (?,?,?,?,?,?,?,?,?,?,?)", row)
        con.execute("insert into scores.account_score_history values (?,?,?,?,?,?,?,?,?,?,?)", row)
        con.close()

    score("r1", "2026-09-30", 0.1, "2026-10-01 05:00:00")
    assert record_alerts(settings, "r1") == 0
    score("r2", "2026-10-31", 0.5, "2026-11-01 05:00:00")  # crossed 0.3: one alert
    assert record_alerts(settings, "r2") == 1
    score("r3", "2026-10-31", 0.5, "2026-11-01 06:00:00")  # the same date again
    assert record_alerts(settings, "r3") == 1
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    alerts = con.execute("select alert_id, run_id from scores.account_alerts").fetchall()
    con.close()
    assert len(alerts) == 1 and alerts[0][1] == "r3"  # replaced, same id: the CRM task once


# --- publish and the pipeline lock, killed in a subprocess of their own (no pipeline) ----------

PUBLISH = """
import sys
from pathlib import Path
from flows.delivery.publish import publish
from flows.warehouse import Warehouse
publish(Warehouse(Path(sys.argv[1])), Path(sys.argv[2]), sys.argv[3], "2026-10-31", "v2")
"""


def _warehouse(path: Path, rows: int) -> Path:
    from flows.delivery.publish import PUBLISHED

    con = duckdb.connect(str(path))
    for relation in PUBLISHED.values():
        con.execute(f"create schema if not exists {relation.split('.')[0]}")
        con.execute(f"create or replace table {relation} as select range as id from range({rows})")
    con.close()
    return path


def _kill_at(point: str, *args: str, script: str) -> None:
    env = {**os.environ, "EXPANSION_CRASH_AT": point}
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def test_a_publish_killed_between_its_two_swaps_is_realigned_at_the_next_start(
    tmp_path: Path,
) -> None:
    from flows.delivery.publish import publish, recover
    from flows.warehouse import Warehouse

    wh = _warehouse(tmp_path / "wh.duckdb", 3)
    serving = tmp_path / "serving"
    publish(Warehouse(wh), serving, "run-1", "2026-10-31", "v1")
    first = sha(serving / "expansion.duckdb")
    _warehouse(wh, 5)
    _kill_at("publish.written", str(wh), str(serving), "run-2", script=PUBLISH)
    assert sha(serving / "expansion.duckdb") == first  # killed before the swap: untouched
    assert (serving / ".expansion.duckdb.run-2.tmp").exists()
    _kill_at("publish.renamed", str(wh), str(serving), "run-3", script=PUBLISH)
    current = serving / "parquet" / "current"
    con = duckdb.connect(str(serving / "expansion.duckdb"), read_only=True)
    assert con.execute("select run_id, parquet_version from _publication").fetchall() == [
        ("run-3", "run-3")
    ]
    con.close()
    assert os.readlink(current) == "versions/run-1"  # the Parquet swap never happened
    assert not list(serving.glob(".expansion.duckdb.*"))  # run-3 cleaned run-2's file

    assert recover(serving) == ["pointed parquet/current at run-3 (was versions/run-1)"]
    assert os.readlink(current) == "versions/run-3"
    rows = duckdb.sql(f"select count(*) from '{current}/account_scores.parquet'").fetchall()
    assert rows == [(5,)]
    assert recover(serving) == []  # nothing left to do


LOCK_AND_DIE = """
import sys
from pathlib import Path
from flows.faults import crash_point
from flows.settings import Settings
from flows.run.lock import pipeline_lock
with pipeline_lock(Settings(home=Path(sys.argv[1])), holder="doomed run"):
    crash_point("test.holding_the_lock")
"""


def test_a_killed_lock_holder_does_not_block_the_next_run(tmp_path: Path) -> None:
    from flows.run.lock import pipeline_lock
    from flows.settings import Settings

    _kill_at("test.holding_the_lock", str(tmp_path), script=LOCK_AND_DIE)
    assert "doomed run" in (tmp_path / "pipeline.lock").read_text()  # the file stays ...
    with pipeline_lock(Settings(home=tmp_path), holder="next run"):  # ... and does not block
        assert "next run" in (tmp_path / "pipeline.lock").read_text()
