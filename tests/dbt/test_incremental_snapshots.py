"""Incremental models: daily builds give exactly what a full refresh gives.

The models keyed on snapshot_date (the `int_account_*_snapshotted` models, the companions,
labels, holdings, limits, cross-sells and health, and the marts account_metric_snapshots,
account_offers, account_snapshots) recompute only the snapshot dates whose
inputs changed since their last build, and the monthly marts (mrr_movements,
mrr_billing_reconciliation) only the months from the first one that changed
(macros/snapshot_incremental.sql). On the demo data (80 accounts x 8 months, built once at
2026-10-31), three daily runs follow, each loading new extracts and building incrementally:

1. one new day of usage (2026-11-01), a support ticket of October closed, and an October
   invoice paid: only the dates from October on may be recomputed (with labels: also those
   up to the label horizon before, and the dates whose labels were not complete);
2. another day (2026-11-02, so 2026-11-01 leaves the snapshot dates), a ticket moved back to
   May and a subscription change of June re-sent with another quantity: the dates from May on;
3. another day (2026-11-03) and a late usage correction file re-sending one metric of some
   August days: the usage dates from August on, the months from November.

After each, every table of the staging, intermediate and marts schemas must equal a
`--full-refresh` build of the same raw data row for row (EXCEPT ALL both ways, zero rows),
leaving out the lineage columns that record when a row was computed. The first build and day 2
compute their snapshot dates in small batches (macros/snapshot_batches.sql), the full
refreshes in one query. Last, the data tests of a daily build check the dates it recomputed
(macros/get_where_subquery.sql).
"""

from __future__ import annotations

import csv
import re
import shutil
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

NO_UNIT_TESTS = ["build", "--exclude", "test_type:unit"]
# the models whose build state is a row of _incremental_builds, not columns of every row
STATE_TABLE = (
    "intermediate.int_account_holdings_snapshotted",
    "intermediate.int_account_limits_snapshotted",
    "intermediate.int_account_cross_sells_ranked",
    "intermediate.int_account_health_snapshotted",
    "marts.account_metric_snapshots",
    "marts.account_offers",
    "marts.account_snapshots",
)
MONTHLY = ("mrr_movements", "mrr_billing_reconciliation")
# the first build and day 2 compute their snapshot dates in batches of at most 200 rows (one
# date of usage rows per batch: 80 accounts x 4 metrics), the other builds and every full
# refresh in one query each (macros/snapshot_batches.sql): the tables must still be equal
BATCHED = {"snapshot_batch_rows": 200}
CORRECTED_MONTH = "2026-08"


def _append_usage_day(inbox: Path) -> date:
    """The latest day's usage rows again, one day later, as a daily file."""
    folder = inbox / "usage" / "usage_daily"
    con = duckdb.connect()
    try:
        files = [str(p) for p in sorted(folder.glob("*.parquet"))]
        last = con.execute(f"select max(usage_date) from read_parquet({files!r})").fetchone()[0]  # type: ignore[index]
        day = date.fromordinal(last.toordinal() + 1)
        con.execute(
            f"copy (select account_id, cast(usage_date + 1 as date) as usage_date, metric, value "
            f"from read_parquet({files!r}) where usage_date = ?) "
            f"to '{folder / f'usage_daily_{day.isoformat()}.parquet'}' (format parquet)",
            [last],
        )
    finally:
        con.close()
    return day


def _resend(
    inbox: Path,
    table: str,
    pick: Callable[[dict[str, str]], bool],
    change: Callable[[dict[str, str]], dict[str, str]],
    stamp: str,
) -> dict[str, str]:
    """Re-send one row of `<inbox>/<table>` (the first that `pick` accepts) changed by
    `change`, in a new CSV file of its own, as a source system re-exports an updated record."""
    folder = inbox / table
    source = sorted(folder.glob("*.csv"))[0]
    with source.open(newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        row = next(r for r in reader if pick(r))
    row.update(change(row))
    with (folder / f"{folder.name}_{stamp}.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, quoting=csv.QUOTE_NONNUMERIC)
        writer.writeheader()
        writer.writerow(row)
    return row


def _correct_usage(inbox: Path) -> date:
    """A late correction file: one metric (the first in name order) of every 5th row of
    CORRECTED_MONTH re-sent with another value. Returns the first corrected day."""
    folder = inbox / "usage" / "usage_daily"
    source = folder / f"usage_daily_{CORRECTED_MONTH}.parquet"
    month = pq.read_table(source).to_pandas()
    metric = sorted(month["metric"].unique())[0]
    corrected = month[month["metric"] == metric].iloc[::5].copy()
    corrected["value"] = corrected["value"] + 7
    corrected = corrected.reset_index(drop=True)
    import pyarrow as pa

    table = pa.Table.from_pandas(corrected, preserve_index=False).cast(pq.read_schema(source))
    pq.write_table(table, folder / f"usage_daily_{CORRECTED_MONTH}_correction.parquet")
    first = min(corrected["usage_date"])
    return first.date() if hasattr(first, "date") else first


def _recomputed(work: Path) -> dict[str, list[date] | str]:
    """What the last dbt build in `work` logged it recomputed: relation -> the snapshot dates,
    or the first month (macros/snapshot_incremental.sql logs both)."""
    found: dict[str, list[date] | str] = {}
    log = (work / "logs" / "dbt.log").read_text(encoding="utf-8")
    last_build = log.rsplit("Running with dbt=", 1)[-1]
    for schema, name, rest in re.findall(
        r'"\w+"\."(\w+)"\."(\w+)": recomputing (.*?) \(inputs loaded', last_build
    ):
        dates = re.findall(r"\d{4}-\d{2}-\d{2}", rest)
        if "months from" in rest:
            found[f"{schema}.{name}"] = dates[0]
        else:
            found[f"{schema}.{name}"] = [date.fromisoformat(d) for d in dates]
    return found


def _batched(work: Path) -> dict[str, int]:
    """The models the last dbt build in `work` computed in batches of snapshot dates, with
    the number of batches (macros/snapshot_batches.sql logs it)."""
    log = (work / "logs" / "dbt.log").read_text(encoding="utf-8")
    last_build = log.rsplit("Running with dbt=", 1)[-1]
    return {
        f"{schema}.{name}": int(batches)
        for schema, name, batches in re.findall(
            r'"\w+"\."(\w+)"\."(\w+)": computing \d+ snapshot date\(s\) in (\d+) batches',
            last_build,
        )
    }


def _within(value: str, start: str, end: str) -> bool:
    return bool(value) and start <= value < end


def _full_refresh_copy(dbt, warehouse: Path, folder: Path, as_of: date) -> Path:
    folder.mkdir(parents=True)
    full = folder / "warehouse.duckdb"
    shutil.copy(warehouse, full)
    dbt.run(["run", "--full-refresh"], folder, warehouse=full, as_of=as_of)
    return full


@pytest.fixture(scope="module")
def daily_runs(dbt, landing: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from flows.ingest.load import load_landing
    from flows.warehouse import Warehouse

    work = tmp_path_factory.mktemp("dbt-incremental-snapshots")
    inbox, warehouse = work / "inbox", work / "warehouse.duckdb"
    shutil.copytree(landing, inbox)
    load_landing(inbox, Warehouse(warehouse, memory_limit="1GB"), "day-0")
    dbt.run(["build"], work, warehouse=warehouse, as_of=dbt.as_of, dbt_vars=BATCHED)
    before = {m: dbt.built_from(warehouse, m) for m in dbt.snapshotted}
    runs: dict = {"before": before, "batched": {"day0": _batched(work)}, "warehouse": warehouse}

    # day 1: a new usage day, a ticket of October closed, an invoice of October paid
    day1 = _append_usage_day(inbox)
    _resend(
        inbox,
        "crm/support_tickets",
        lambda r: _within(r["opened_at"], "2026-10-01", "2026-10-20"),
        lambda r: {"closed_at": "2026-11-01 09:00:00", "updated_at": "2026-11-01 09:00:00"},
        "20261101",
    )
    _resend(
        inbox,
        "billing/invoices",
        lambda r: _within(r["issued_at"], "2026-10-01", "2026-10-25"),
        lambda r: {
            "paid_at": "2026-11-01 10:00:00",
            "status": "paid",
            "updated_at": "2026-11-01 10:00:00",
        },
        "20261101",
    )
    # an activity of October restated a week later (stg_crm__activities is incremental too)
    _resend(
        inbox,
        "crm/activities",
        lambda r: _within(r["occurred_at"], "2026-10-01", "2026-10-20"),
        lambda r: {"occurred_at": "2026-10-27 11:00:00"},
        "20261101_correction",  # activities are immutable: a restatement comes as a correction
    )
    load_landing(inbox, Warehouse(warehouse, memory_limit="1GB"), "day-1")
    dbt.run(NO_UNIT_TESTS, work, warehouse=warehouse, as_of=day1)
    runs["day1"] = {
        "as_of": day1,
        "recomputed": _recomputed(work),
        "built_from": {m: dbt.built_from(warehouse, m) for m in dbt.snapshotted},
        "differences": dbt.differences(
            warehouse, _full_refresh_copy(dbt, warehouse, work / "full-1", day1)
        ),
    }

    # day 2: another usage day, a ticket moved back to May, a June plan change restated
    day2 = _append_usage_day(inbox)
    _resend(
        inbox,
        "crm/support_tickets",
        lambda r: _within(r["opened_at"], "2026-09-01", "2026-09-30"),
        lambda r: {"opened_at": "2026-05-10 08:00:00", "updated_at": "2026-11-02 09:00:00"},
        "20261102",
    )
    _resend(
        inbox,
        "billing/subscription_changes",
        lambda r: _within(r["effective_at"], "2026-06-01", "2026-06-30"),
        lambda r: {"quantity": str(int(r["quantity"]) + 5)},
        "20261102_correction",  # a restated change: the loader takes it from a correction file
    )
    load_landing(inbox, Warehouse(warehouse, memory_limit="1GB"), "day-2")
    dbt.run(NO_UNIT_TESTS, work, warehouse=warehouse, as_of=day2, dbt_vars=BATCHED)
    runs["batched"]["day2"] = _batched(work)
    runs["day2"] = {
        "as_of": day2,
        "recomputed": _recomputed(work),
        "built_from": {m: dbt.built_from(warehouse, m) for m in dbt.snapshotted},
        "differences": dbt.differences(
            warehouse, _full_refresh_copy(dbt, warehouse, work / "full-2", day2)
        ),
    }

    # day 3: another usage day and a late correction of August usage
    day3 = _append_usage_day(inbox)
    corrected_from = _correct_usage(inbox)
    load_landing(inbox, Warehouse(warehouse, memory_limit="1GB"), "day-3")
    dbt.run(NO_UNIT_TESTS, work, warehouse=warehouse, as_of=day3)
    runs["day3"] = {
        "as_of": day3,
        "corrected_from": corrected_from,
        "recomputed": _recomputed(work),
        "built_from": {m: dbt.built_from(warehouse, m) for m in dbt.snapshotted},
        "differences": dbt.differences(
            warehouse, _full_refresh_copy(dbt, warehouse, work / "full-3", day3)
        ),
    }
    return runs


@pytest.mark.parametrize("day", ["day1", "day2", "day3"])
def test_incremental_build_equals_a_full_refresh(dbt, daily_runs: dict, day: str) -> None:
    differences = daily_runs[day]["differences"]
    compared = set(differences)
    expected = (
        {f"intermediate.{m}" for m in dbt.snapshotted}
        | set(STATE_TABLE)
        | {f"marts.{m}" for m in MONTHLY}
        | {"marts.accounts", "staging.stg_usage__usage_daily"}
    )
    assert expected <= compared, f"tables not compared: {expected - compared}"
    different = {t: d for t, d in differences.items() if d != (0, 0)}
    assert not different, f"(rows only incremental, rows only full refresh): {different}"


@pytest.mark.parametrize("day", ["day0", "day2"])
def test_batched_builds_computed_their_dates_in_batches(daily_runs: dict, day: str) -> None:
    """The builds that the full refreshes are compared with did run in batches: usage one
    date per batch, the account-grain models and marts several dates per batch."""
    batched = daily_runs["batched"][day]
    usage = batched.get("intermediate.int_account_usage_snapshotted", 0)
    assert usage >= 2, f"usage not batched on {day}: {batched}"
    assert batched.get("marts.account_snapshots", 0) >= 2, batched
    if day == "day0":
        assert usage > batched["marts.account_snapshots"], batched


def _failing_models(dbt, daily_runs: dict, folder: Path, scope: str, duplicate_at: date) -> set:
    """The models whose data tests fail on a copy of the day-3 warehouse in which one row of
    int_account_usage_snapshotted (build state in its rows) and one of account_snapshots
    (build state in _incremental_builds) at `duplicate_at` is there twice."""
    copy = dbt.copy(daily_runs["warehouse"], folder)
    con = duckdb.connect(str(copy))
    try:
        for table in ("intermediate.int_account_usage_snapshotted", "marts.account_snapshots"):
            con.execute(
                f"insert into {table} select * from {table} where snapshot_date = ? limit 1",
                [duplicate_at],
            )
    finally:
        con.close()
    failed = _failed_tests(
        dbt, daily_runs, folder, copy, scope, ["int_account_usage_snapshotted", "account_snapshots"]
    )
    return {node.attached_node.rsplit(".", 1)[-1] for node in failed}


def _failed_tests(
    dbt, daily_runs: dict, folder: Path, copy: Path, scope: str, select: list[str]
) -> list:
    """The test nodes of `select` that fail on `copy` at day 3's as_of with
    data_tests_scope=`scope`."""
    result = dbt.run(
        ["test", "--select", *select],
        folder,
        warehouse=copy,
        as_of=daily_runs["day3"]["as_of"],
        dbt_vars={"data_tests_scope": scope},
        check=False,
    )
    return [
        r.node
        for r in result.result.results
        if str(getattr(r.status, "value", r.status)).lower() in {"fail", "error"}
    ]


def test_daily_data_tests_check_the_dates_the_build_recomputed(
    dbt, daily_runs: dict, tmp_path: Path
) -> None:
    """macros/get_where_subquery.sql: with data_tests_scope=changed (the pipeline's daily
    builds) the uniqueness tests of models keyed on snapshot_date look at the dates the latest
    build recomputed; a duplicate in a date it kept is found only by whole-table tests (the
    default, and the pipeline's build after a failed one). Day 3 recomputed August on and the
    new as_of, not March."""
    both = {"int_account_usage_snapshotted", "account_snapshots"}
    as_of, kept = daily_runs["day3"]["as_of"], date(2026, 3, 31)
    assert _failing_models(dbt, daily_runs, tmp_path / "new", "changed", as_of) == both
    assert _failing_models(dbt, daily_runs, tmp_path / "kept", "changed", kept) == set()
    assert _failing_models(dbt, daily_runs, tmp_path / "all", "all", kept) == both


def _first_recomputed(dbt, model: str, changed_from: date) -> date:
    """The first snapshot date a change from `changed_from` recomputes: a labelled model's
    labels look forward, so it starts the label horizon earlier."""
    if model in dbt.labelled:
        return changed_from - timedelta(days=dbt.horizon_days)
    return changed_from


def test_day1_recomputes_only_the_changed_dates(dbt, daily_runs: dict) -> None:
    """A new usage day and October changes: the month-ends before October keep their rows
    (with labels: before the horizon ahead of October), and a labelled model recomputes the
    dates whose labels were not complete at 2026-10-31."""
    as_of = daily_runs["day1"]["as_of"]
    for model in dbt.snapshotted:
        before = daily_runs["before"][model]
        after = daily_runs["day1"]["built_from"][model]
        (new,) = after[as_of]
        assert as_of not in before and new not in set().union(*before.values()), model
        first = _first_recomputed(dbt, model, date(2026, 10, 1))
        kept = [d for d in after if d < first]
        assert kept, model
        for d in kept:
            assert after[d] == before[d], f"{model}: {d} was recomputed"
        assert after[date(2026, 10, 31)] == {new}, f"{model}: 2026-10-31 was not recomputed"
        if model in dbt.labelled:
            incomplete = [d for d in after if d + timedelta(days=dbt.horizon_days) > dbt.as_of]
            assert date(2026, 8, 31) in incomplete, incomplete
            for d in incomplete:
                assert after[d] == {new}, f"{model}: {d} (labels not complete) was kept"


def test_day1_state_table_models_recompute_the_same_dates(dbt, daily_runs: dict) -> None:
    """The models whose build state is a row of _incremental_builds log what they recompute:
    the new as_of and October (and, with labels, the dates of incomplete labels)."""
    recomputed = daily_runs["day1"]["recomputed"]
    as_of = daily_runs["day1"]["as_of"]
    for relation in STATE_TABLE:
        dates = recomputed[relation]
        assert isinstance(dates, list), relation
        assert as_of in dates and date(2026, 10, 31) in dates, relation
        labelled = relation == "marts.account_snapshots"
        first = date(2026, 10, 1) - timedelta(days=dbt.horizon_days if labelled else 0)
        assert min(dates) >= first, f"{relation}: {dates}"
        if labelled:
            assert date(2026, 8, 31) in dates, f"{relation}: incomplete labels kept: {dates}"


@pytest.mark.parametrize(
    ("day", "first_month"), [("day1", "2026-10-01"), ("day2", "2026-05-01"), ("day3", "2026-11-01")]
)
def test_monthly_marts_recompute_from_the_first_changed_month(
    daily_runs: dict, day: str, first_month: str
) -> None:
    """October changes: from October. A June plan change and a ticket moved to May: from May.
    A new day and a usage correction: the as_of month only (the previous as_of, 2026-11-02,
    left November partial; a usage correction moves no MRR)."""
    recomputed = daily_runs[day]["recomputed"]
    for model in MONTHLY:
        assert recomputed[f"marts.{model}"] == first_month, model


def test_day3_usage_correction_recomputes_from_the_corrected_day(dbt, daily_runs: dict) -> None:
    """A late correction of August usage: the usage-based dates from August on, not before."""
    corrected_from = daily_runs["day3"]["corrected_from"]
    before = daily_runs["day2"]["built_from"]["int_account_usage_snapshotted"]
    after = daily_runs["day3"]["built_from"]["int_account_usage_snapshotted"]
    (new,) = after[daily_runs["day3"]["as_of"]]
    for d in after:
        if d >= corrected_from:
            assert after[d] == {new}, f"{d} was not recomputed"
        elif d in before:
            assert after[d] == before[d], f"{d} was recomputed"
    recomputed = daily_runs["day3"]["recomputed"]["marts.account_metric_snapshots"]
    assert isinstance(recomputed, list)
    assert min(recomputed) >= corrected_from and date(2026, 8, 31) in recomputed


def test_day2_recomputes_from_the_earliest_change_and_drops_the_old_as_of(
    dbt,
    daily_runs: dict,
) -> None:
    day1, as_of = daily_runs["day1"]["as_of"], daily_runs["day2"]["as_of"]
    for model in dbt.snapshotted:
        before = daily_runs["day1"]["built_from"][model]
        after = daily_runs["day2"]["built_from"][model]
        assert day1 not in after, f"{model}: the previous as_of {day1} is still there"
        (new,) = after[as_of]
        first = _first_recomputed(dbt, model, date(2026, 5, 10))  # the ticket's new opened_at
        for d in after:
            if d >= first:
                assert after[d] == {new}, f"{model}: {d} was not recomputed"
            else:
                assert after[d] == before[d], f"{model}: {d} was recomputed"


def test_build_state_tables_are_made_before_any_model_runs(dbt, raw_warehouse, tmp_path):
    """Two models of one schema recording their build state at once (threads > 1) must not
    both create `_incremental_builds` on a first build (DuckDB: "Catalog write-write conflict
    on create"): on-run-start makes the table of every schema that has such models, before
    any node runs, even when the build selects none of them."""
    warehouse = dbt.copy(raw_warehouse, tmp_path)
    dbt.run(["run", "--select", "stg_config__usage_metrics"], tmp_path, warehouse=warehouse)
    schemas = {relation.split(".")[0] for relation in STATE_TABLE} | {"marts"}
    found = dbt.read(
        warehouse,
        "select schema_name from duckdb_tables() where table_name = '_incremental_builds'",
    )
    assert set(found["schema_name"]) == schemas
    assert dbt.read(warehouse, "select count(*) as n from marts._incremental_builds")["n"][0] == 0


def _failing_singular(
    dbt, daily_runs: dict, folder: Path, scope: str, month: date, snapshot: date
) -> set:
    """The singular tests that fail on a copy of the day-3 warehouse in which one account's
    MRR is off by 7: its mrr_movements closing in `month` (the movements no longer reconcile)
    and its account_snapshots row at `snapshot` (no longer the timeline's)."""
    copy = dbt.copy(daily_runs["warehouse"], folder)
    con = duckdb.connect(str(copy))
    try:
        ((account,),) = con.execute(
            "select min(account_id) from marts.account_snapshots "
            "where snapshot_date = ? and is_active",
            [snapshot],
        ).fetchall()
        con.execute(
            "update marts.mrr_movements set closing_mrr = closing_mrr + 7 "
            "where account_id = ? and month_start = ?",
            [account, month],
        )
        con.execute(
            "update marts.account_snapshots set mrr = mrr + 7 "
            "where account_id = ? and snapshot_date = ?",
            [account, snapshot],
        )
    finally:
        con.close()
    singular = ["assert_mrr_movements_reconcile", "assert_snapshot_mrr_matches_timeline"]
    return {node.name for node in _failed_tests(dbt, daily_runs, folder, copy, scope, singular)}


def test_daily_singular_tests_check_what_the_build_recomputed(
    dbt, daily_runs: dict, tmp_path: Path
) -> None:
    """The singular tests over account_snapshots and mrr_movements read the dates and months
    the latest build recomputed when data_tests_scope=changed (recomputed_rows in
    macros/get_where_subquery.sql): day 3 recomputed the as_of (and its month), not March."""
    both = {"assert_mrr_movements_reconcile", "assert_snapshot_mrr_matches_timeline"}
    as_of = daily_runs["day3"]["as_of"]
    as_of = as_of if isinstance(as_of, date) else date.fromisoformat(str(as_of))
    new = (as_of.replace(day=1), as_of)
    kept = (date(2026, 3, 1), date(2026, 3, 31))
    assert _failing_singular(dbt, daily_runs, tmp_path / "new", "changed", *new) == both
    assert _failing_singular(dbt, daily_runs, tmp_path / "kept", "changed", *kept) == set()
    assert _failing_singular(dbt, daily_runs, tmp_path / "all", "all", *kept) == both
