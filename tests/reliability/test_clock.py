"""The clock (issue #18): a run for a date before the current publication never replaces it and
never syncs; a few stray rows cannot move the as_of for everyone; no as_of from the future.

Cheap by design: tiny warehouses (20 accounts), `resolve_as_of`, `publish` and the pipeline's
own stages (`flows.pipeline.STAGES`: as_of, publish, sync) called directly, no dbt, no model.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows.delivery import stage as delivery
from flows.delivery.publish import HISTORY_TABLES, PUBLISHED, publish, replaces_current
from flows.errors import ExtractError
from flows.modelling.train import TrainResult
from flows.pipeline import STAGES, RunContext, run_stages
from flows.run.as_of import choose_as_of, complete_day, resolve_as_of
from flows.settings import Settings
from flows.warehouse import Warehouse

ACCOUNTS = [f"A-{i:03d}" for i in range(20)]
FIRST, LAST = date(2026, 6, 1), date(2026, 10, 31)
CURRENT, PAST = date(2026, 10, 31), date(2026, 6, 30)
NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)  # the wall clock of the as_of tests


# --- tiny warehouses ----------------------------------------------------------------------


def _usage(con: duckdb.DuckDBPyConnection) -> None:
    """raw.usage__usage_daily as the loader leaves it: every account every day FIRST..LAST,
    one file per month."""
    con.execute("create schema if not exists raw")
    con.execute(
        "create or replace table raw.usage__usage_daily (account_id varchar, usage_date date, "
        "metric varchar, value double, _source_file varchar, _loaded_at timestamp, "
        "_run_id varchar, _extra json)"
    )
    con.execute(
        "insert into raw.usage__usage_daily select a.id, d.day::date, 'm1', 1.0, "
        "'usage_' || strftime(d.day, '%Y-%m') || '.parquet', now(), 'load-1', null "
        "from (select unnest(?) as id) a, range(?::date, ?::date + 1, interval 1 day) d(day)",
        [ACCOUNTS, FIRST, LAST],
    )


def _stray(con: duckdb.DuckDBPyConnection, file: str, rows: list[tuple[str, date]]) -> None:
    con.executemany(
        "insert into raw.usage__usage_daily values (?, ?, 'm1', 1.0, ?, now(), 'load-2', null)",
        [(account, day, file) for account, day in rows],
    )


def _scored(con: duckdb.DuckDBPyConnection, as_of: date, p: float, accounts: int) -> None:
    """What the dbt build and score stages of a run of `as_of` leave in the warehouse."""
    for relation in PUBLISHED.values():
        con.execute(f"create schema if not exists {relation.split('.')[0]}")
    for relation in PUBLISHED.values():
        if relation.startswith("marts."):
            con.execute(
                f"create or replace table {relation} as select range as id, "
                f"?::date as as_of from range({accounts})",
                [as_of],
            )
    con.execute(
        "create or replace table scores.account_scores as select 'A-' || lpad(range::varchar, "
        "3, '0') as account_id, ?::double as p_expansion, ?::date as as_of from range(?)",
        [p, as_of, accounts],
    )
    con.execute(
        "create table if not exists scores.account_score_history as "
        "select * from scores.account_scores limit 0"
    )
    con.execute("delete from scores.account_score_history where as_of = ?", [as_of])
    con.execute("insert into scores.account_score_history select * from scores.account_scores")
    con.execute("create table if not exists scores.account_alerts (account_id varchar, as_of date)")
    con.execute("create or replace table scores.model_metrics as select 'v1' as model_version")


def _warehouse(path: Path, *stray: tuple[str, list[tuple[str, date]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        _usage(con)
        for file, rows in stray:
            _stray(con, file, rows)
    return path


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    syncs = tmp_path / "syncs.yml"
    syncs.write_text(
        "syncs:\n  - name: crm\n    source: account_scores\n    key: account_id\n"
        "    destination: {type: csv, path: crm}\n"
        "    fields: {AccountId: account_id, Score__c: p_expansion, As_Of__c: as_of}\n"
    )
    return Settings(home=tmp_path / "home", syncs_config=syncs, freshness="off", **kw)


# --- what published means, read back -------------------------------------------------------


def _current(serving: Path) -> dict[str, Any]:
    """Every current table of the serving file (all but the score history), its rows, and the
    bytes of each current Parquet file: what BI and syncs read."""
    seen: dict[str, Any] = {}
    with duckdb.connect(str(serving / "expansion.duckdb"), read_only=True) as con:
        for name in PUBLISHED:
            if name not in HISTORY_TABLES:
                seen[name] = con.execute(f"select * from {name} order by all").fetchall()
        seen["_publication"] = con.execute(
            "select run_id, published_at, as_of, model_version from _publication"
        ).fetchall()
    for name in PUBLISHED:
        if name not in HISTORY_TABLES:
            data = (serving / "parquet" / "current" / f"{name}.parquet").read_bytes()
            seen[f"{name}.parquet"] = hashlib.sha256(data).hexdigest()
    return seen


def _history(serving: Path) -> dict[date, int]:
    with duckdb.connect(str(serving / "expansion.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select as_of, count(*) from account_score_history group by all"
        ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def _sent(settings: Settings) -> tuple[list[tuple[Any, ...]], list[str]]:
    """The sync ledger (what the destination holds) and every file the destination received."""
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        ledger = con.execute(
            "select sync_name, record_key, record_hash from sync.record_state order by all"
        ).fetchall()
    files = sorted(p.name for p in settings.sync.rglob("*.csv"))
    return ledger, files


def _run(settings: Settings, run_id: str, *, backfill: bool = False) -> RunContext:
    """The pipeline's own stages from the as_of on, minus the dbt build, gates, train and score
    (their warehouse tables are written by `_scored`): as_of -> publish -> sync."""
    ctx = RunContext(settings, run_id, backfill=backfill, prefect=False)
    ctx.model = TrainResult(champion_version="v1")
    run_stages(ctx, [s for s in STAGES if s.name in {"as_of", "publish", "sync"}])
    return ctx


def _first_publication(tmp_path: Path) -> Settings:
    """A current publication of CURRENT (20 accounts), synced to the CSV destination."""
    settings = _settings(tmp_path, as_of=CURRENT)
    with duckdb.connect(str(_warehouse(settings.warehouse))) as con:
        _scored(con, CURRENT, 0.2, 20)
    ctx = _run(settings, "run-current")
    assert "sync" in ctx.summary.stages and ctx.synced[0].inserted == 20  # it can send
    return settings


# --- 1. a past date never replaces the current publication, never syncs ------------------


@pytest.mark.parametrize("backfill", [False, True], ids=["run --as-of", "backfill"])
def test_a_past_date_writes_history_only_and_sends_nothing(
    tmp_path: Path, backfill: bool, caplog: pytest.LogCaptureFixture
) -> None:
    current = _first_publication(tmp_path)
    serving = current.serving
    before, sent_before = _current(serving), _sent(current)

    past = current.model_copy(update={"as_of": PAST})
    with duckdb.connect(str(past.warehouse)) as con:
        _scored(con, PAST, 0.9, 15)  # fewer accounts, other scores: what the past run scored
    with caplog.at_level(logging.WARNING):
        ctx = _run(past, "run-past", backfill=backfill)

    # the plan: a backfill, whatever was asked; no drift gate, no sync
    assert ctx.backfill
    plan = [s.name for s in STAGES if s.when(ctx)]
    assert "sync" not in plan and "check_drift" not in plan
    assert "sync" not in ctx.summary.stages and ctx.synced == []
    # the current version (tables, _publication, Parquet bytes) is as it was
    assert _current(serving) == before
    assert ctx.summary.published["history_only"] is True
    # the history has the past date's rows, and keeps the current date's
    assert _history(serving) == {CURRENT: 20, PAST: 15}
    # nothing reached the destination: same ledger, no new file
    assert _sent(current) == sent_before
    # `expansion sync` afterwards sends nothing either: the serving version is the current one
    assert [r.sent for r in delivery.sync(current, "sync-after")] == [0]
    if not backfill:  # the run says so, in the log and the run summary
        notes = vars(ctx.summary)["notes"]
        assert any("before the as_of of the current publication (2026-10-31)" in n for n in notes)
        assert "nothing is synced" in caplog.text


def test_a_rerun_of_the_current_date_and_a_later_date_replace_it_and_sync(
    tmp_path: Path,
) -> None:
    """The rule cuts only at earlier dates: the same as_of (a rerun) or a later one publishes
    and syncs as usual."""
    current = _first_publication(tmp_path)
    with duckdb.connect(str(current.warehouse)) as con:
        _scored(con, CURRENT, 0.3, 20)
    ctx = _run(current, "run-rerun")
    assert not ctx.backfill and ctx.summary.published["history_only"] is False
    assert ctx.synced[0].updated == 20
    with duckdb.connect(str(current.serving_db), read_only=True) as con:
        assert con.execute("select distinct p_expansion from account_scores").fetchall() == [(0.3,)]
        assert con.execute("select run_id from _publication").fetchone() == ("run-rerun",)


def test_publish_itself_never_swaps_in_an_earlier_as_of(tmp_path: Path) -> None:
    """Defence in depth: a caller that asks publish() for a full publication of a past date
    (not through the pipeline's plan) gets the history only, and a report saying so."""
    wh = tmp_path / "wh.duckdb"
    with duckdb.connect(str(wh)) as con:
        _scored(con, CURRENT, 0.2, 20)
    serving = tmp_path / "serving"
    publish(Warehouse(wh), serving, "run-1", CURRENT.isoformat(), "v1")
    before = _current(serving)
    with duckdb.connect(str(wh)) as con:
        _scored(con, PAST, 0.9, 15)
    report = publish(Warehouse(wh), serving, "run-2", PAST.isoformat(), "v1")
    assert report.history_only and "before the as_of of the serving version" in report.note
    assert _current(serving) == before
    assert _history(serving) == {CURRENT: 20, PAST: 15}
    # the same date again replaces it
    again = publish(Warehouse(wh), serving, "run-3", CURRENT.isoformat(), "v1")
    assert not again.history_only
    assert _current(serving)["_publication"][0][0] == "run-3"


def test_a_publication_dated_in_the_future_does_not_hold_back_real_dates() -> None:
    """A serving version whose as_of is later than the wall clock allows (9999-12-31, written
    before the as_of rule) is no current publication: a real date replaces it."""
    now = datetime(2026, 11, 2, tzinfo=UTC)
    assert replaces_current(CURRENT, date(9999, 12, 31), now=now)
    assert replaces_current(CURRENT, date(2026, 11, 3), now=now) is False  # within tolerance
    assert replaces_current(PAST, CURRENT, now=now) is False
    assert replaces_current(CURRENT, CURRENT, now=now) and replaces_current(CURRENT, None)


# --- 2. a few stray rows do not move the as_of ---------------------------------------------


def _choose(tmp_path: Path, *stray: tuple[str, list[tuple[str, date]]], **kw: Any) -> Any:
    settings = Settings(home=tmp_path, **kw)
    _warehouse(settings.warehouse, *stray)
    return settings, choose_as_of(settings, now=NOW)


def test_one_row_a_day_later_does_not_move_the_as_of_and_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stray = ("usage_late.parquet", [("A-007", LAST + timedelta(days=1))])
    settings, choice = _choose(tmp_path, stray)
    assert choice.day == LAST
    with caplog.at_level(logging.WARNING):
        assert resolve_as_of(settings, now=NOW) == LAST
    for named in (
        "raw.usage__usage_daily",
        "1 row(s) dated after the as_of 2026-10-31",
        "usage_late.parquet (1 row, 2026-11-01)",
        "account_id A-007, usage_date 2026-11-01, metric m1",
        "2026-11-01 only 1",
    ):
        assert named in caplog.text


def test_stray_rows_of_a_few_accounts_on_several_days_and_files(tmp_path: Path) -> None:
    late = [(a, LAST + timedelta(days=d)) for a in ("A-001", "A-002", "A-003") for d in (1, 2)]
    stray = [("usage_late_a.csv", late), ("usage_late_b.csv", [("A-004", date(2026, 11, 2))])]
    _, choice = _choose(tmp_path, *stray)
    assert choice.day == LAST
    assert choice.held_back.rows == 7
    assert [f[0] for f in choice.held_back.files] == ["usage_late_a.csv", "usage_late_b.csv"]
    assert "usage_late_b.csv (1 row, 2026-11-02)" in (choice.warning or "")


def test_a_complete_later_day_moves_the_as_of(tmp_path: Path) -> None:
    """The rule holds back stray rows, not data: a day every account reports is the as_of."""
    full = [(a, LAST + timedelta(days=1)) for a in ACCOUNTS]
    _, choice = _choose(tmp_path, ("usage_2026-11.parquet", full))
    assert choice.day == LAST + timedelta(days=1) and choice.warning is None


def test_no_as_of_from_the_future(tmp_path: Path) -> None:
    """Complete days dated after the wall clock (UTC) plus one day never set the as_of; an
    explicit --as-of works as before, up to the latest real usage day."""
    future = [(a, date(2026, 11, 10)) for a in ACCOUNTS] + [("A-001", date(9999, 12, 31))]
    settings, choice = _choose(tmp_path, ("usage_future.parquet", future))
    assert choice.day == LAST
    assert "dated later than today in UTC plus 1 day" in (choice.warning or "")
    assert "usage_future.parquet (21 rows, 2026-11-10 to 9999-12-31)" in (choice.warning or "")
    explicit = settings.model_copy(update={"as_of": date(2026, 7, 15)})
    assert choose_as_of(explicit, now=NOW).day == date(2026, 7, 15)
    with pytest.raises(ValueError, match="after the latest usage data"):
        choose_as_of(settings.model_copy(update={"as_of": date(2026, 11, 10)}), now=NOW)


def test_usage_only_in_the_future_is_nothing_to_score(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with duckdb.connect(str(_warehouse(settings.warehouse))) as con:
        con.execute("update raw.usage__usage_daily set usage_date = usage_date + 3650")
    with pytest.raises(ExtractError, match="has usage only after 2026-11-03"):
        choose_as_of(settings, now=NOW)


# --- the rule on its own -------------------------------------------------------------------


def _days(counts: list[int], last: date = LAST) -> dict[date, int]:
    return {last - timedelta(days=len(counts) - 1 - i): n for i, n in enumerate(counts) if n}


def test_complete_day_rule() -> None:
    assert complete_day(_days([100] * 30 + [2]), 0.5) == LAST - timedelta(days=1)
    assert complete_day(_days([100] * 30 + [60]), 0.5) == LAST  # 60% of a typical day
    assert complete_day(_days([100] * 30 + [3, 0, 1]), 0.5) == LAST - timedelta(days=3)
    assert complete_day(_days([7]), 0.5) == LAST  # the first day of data
    assert complete_day({}, 0.5) is None
    # a business whose accounts each report one day a week: every day is a typical day
    assert complete_day(_days([14, 15, 14, 13, 15, 14, 15] * 5), 0.5) == LAST
    # weekends at a third of a weekday: below the default share, above a share of 0.25
    week = [90, 90, 90, 90, 90, 30, 30]
    assert complete_day(_days(week * 5), 0.5) == LAST - timedelta(days=2)
    assert complete_day(_days(week * 5), 0.25) == LAST
