"""A backfill is one run (flows/backfill.py `run_backfill`): the stages marked `shared` once,
the others per date in order, one run record per date and one for the backfill; the first
date that fails stops the rest, naming itself, and the dates before it stay done. The stages
here are stand-ins (no dbt, no model): what is checked is the order, the records, the lock."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from flows.backfill import BackfillStopped, run_backfill
from flows.pipeline import STAGES, RunContext, Stage
from flows.run.as_of import backfill_plan
from flows.settings import Settings
from flows.warehouse import USAGE, Warehouse

DAYS = [date(2026, 3, 31), date(2026, 1, 31), date(2026, 2, 28)]  # any order, sorted by the run


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path / "state", duckdb_memory_limit="500MB")
    with Warehouse.from_settings(settings).connect() as con:
        con.execute("create schema raw")
        con.execute(
            f"create table {USAGE} as select date '2026-04-30' as usage_date, 'a1' as account_id"
        )
    return settings


class Broken(RuntimeError):
    exit_code = 7


def _stand_ins(calls: list[tuple[str, date | None]], fail: str | None = None) -> list[Stage]:
    """STAGES with their names, marks and `when`, each recording (stage, as_of) instead of
    working; `fail` ("stage@date") fails there."""

    def stand_in(stage: Stage) -> Stage:
        def run(ctx: RunContext) -> None:
            day = ctx.settings.as_of
            calls.append((stage.name, day))
            if stage.name == "as_of":
                ctx.as_of = day
            if fail == f"{stage.name}@{day}":
                raise Broken("marts.account_features: 3 rows fail")

        return Stage(stage.name, run, stage.when, stage.shared)

    return [stand_in(s) for s in STAGES]


def test_shared_stages_once_then_each_date_in_order(settings: Settings) -> None:
    calls: list[tuple[str, date | None]] = []
    summary = run_backfill(settings, DAYS, prefect=False, run_id="bf", stages=_stand_ins(calls))
    assert summary.status == "completed"
    shared = [name for name, day in calls if day is None]
    # no freshness (past dates need no fresh data); dbt parsed once for every date
    assert shared == ["load", "validate_raw", "dbt_parse"]
    per_date = [name for name, day in calls if day == date(2026, 1, 31)]
    assert per_date == [
        s.name for s in STAGES if not s.shared and s.name not in {"check_drift", "sync"}
    ]
    assert [d for _, d in calls if d is not None] == sorted(d for _, d in calls if d is not None)
    assert set(summary.shared.stages) == {"load", "validate_raw", "dbt_parse", "total"}
    assert [d.as_of for d in summary.dates] == ["2026-01-31", "2026-02-28", "2026-03-31"]
    assert all("load" not in d.stages and "total" in d.stages for d in summary.dates)
    # one record for the backfill (its dates' run ids), one per date
    runs = settings.runs_dir
    record = json.loads((runs / "bf.json").read_text())
    assert record["status"] == "completed" and record["backfill"]["dates"] == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
    ]
    for day, run_id in record["backfill"]["runs"].items():
        dated = json.loads((runs / f"{run_id}.json").read_text())
        assert dated["as_of"] == day and dated["status"] == "completed"
        assert dated["backfill"] == {"run_id": "bf"}


def test_a_failing_date_stops_the_rest_and_says_which(settings: Settings) -> None:
    calls: list[tuple[str, date | None]] = []
    stages = _stand_ins(calls, fail="validate_marts@2026-02-28")
    with pytest.raises(BackfillStopped, match="backfill stopped at as_of 2026-02-28") as stop:
        run_backfill(settings, DAYS, prefect=False, run_id="bf", stages=stages)
    assert stop.value.done == [date(2026, 1, 31)] and stop.value.left == [date(2026, 3, 31)]
    assert stop.value.exit_code == 7  # the cause's exit code
    assert "Broken: marts.account_features: 3 rows fail" in str(stop.value)
    assert "dates done (kept): 2026-01-31; dates not run: 2026-03-31" in str(stop.value)
    assert date(2026, 3, 31) not in {d for _, d in calls}
    records = {p.stem: json.loads(p.read_text()) for p in settings.runs_dir.glob("*.json")}
    assert records["bf"]["status"] == "failed" and "2026-02-28" in records["bf"]["error"]
    assert records["bf-2026-01-31"]["status"] == "completed"
    assert records["bf-2026-02-28"]["status"] == "failed"
    assert "bf-2026-03-31" not in records


def test_dates_after_the_data_fail_before_any_date_runs(settings: Settings) -> None:
    calls: list[tuple[str, date | None]] = []
    days = [date(2026, 3, 31), date(2026, 5, 31)]
    with pytest.raises(ValueError, match=r"2026-05-31 after the latest usage data \(2026-04-30\)"):
        run_backfill(settings, days, prefect=False, run_id="bf", stages=_stand_ins(calls))
    assert {d for _, d in calls} == {None}  # the load ran, no date did


def test_a_plan_is_a_range_or_a_list() -> None:
    assert backfill_plan(None, None, dates=[date(2026, 3, 31), date(2026, 1, 31)] * 2) == [
        date(2026, 1, 31),
        date(2026, 3, 31),
    ]
    assert backfill_plan(date(2026, 1, 1), date(2026, 2, 28), "month") == [
        date(2026, 1, 31),
        date(2026, 2, 28),
    ]
    with pytest.raises(ValueError, match="not both"):
        backfill_plan(date(2026, 1, 1), None, dates=[date(2026, 1, 31)])
    with pytest.raises(ValueError, match="a date range"):
        backfill_plan(date(2026, 1, 1), None)
    with pytest.raises(ValueError, match="nothing to backfill"):
        backfill_plan(date(2026, 1, 2), date(2026, 1, 3), "month")
