"""Incremental snapshot models: daily builds give exactly what a full refresh gives.

The `int_account_*_snapshotted` models recompute only the snapshot dates whose inputs changed
since their last build (macros/snapshot_incremental.sql). On the demo data (80 accounts x 8
months, built once at 2026-10-31), two daily runs follow, each loading new extracts and
building incrementally:

1. one new day of usage (2026-11-01), a support ticket of October closed, and an October
   invoice paid: only the dates from October on may be recomputed;
2. another day (2026-11-02, so 2026-11-01 leaves the snapshot dates), a ticket moved back to
   May and a subscription change of June re-sent with another quantity: the dates from May on.

After each, every table of the staging, intermediate and marts schemas must equal a
`--full-refresh` build of the same raw data row for row (EXCEPT ALL both ways, zero rows),
leaving out the lineage columns that record when a row was computed.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import pytest

NO_UNIT_TESTS = ["build", "--exclude", "test_type:unit"]


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
    dbt.run(["build"], work, warehouse=warehouse, as_of=dbt.as_of)
    before = {m: dbt.built_from(warehouse, m) for m in dbt.snapshotted}
    runs: dict = {"before": before}

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
    load_landing(inbox, Warehouse(warehouse, memory_limit="1GB"), "day-1")
    dbt.run(NO_UNIT_TESTS, work, warehouse=warehouse, as_of=day1)
    runs["day1"] = {
        "as_of": day1,
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
    dbt.run(NO_UNIT_TESTS, work, warehouse=warehouse, as_of=day2)
    runs["day2"] = {
        "as_of": day2,
        "built_from": {m: dbt.built_from(warehouse, m) for m in dbt.snapshotted},
        "differences": dbt.differences(
            warehouse, _full_refresh_copy(dbt, warehouse, work / "full-2", day2)
        ),
    }
    return runs


@pytest.mark.parametrize("day", ["day1", "day2"])
def test_incremental_build_equals_a_full_refresh(dbt, daily_runs: dict, day: str) -> None:
    differences = daily_runs[day]["differences"]
    compared = set(differences)
    expected = {f"intermediate.{m}" for m in dbt.snapshotted} | {
        "marts.account_snapshots",
        "marts.accounts",
        "staging.stg_usage__usage_daily",
    }
    assert expected <= compared, f"tables not compared: {expected - compared}"
    different = {t: d for t, d in differences.items() if d != (0, 0)}
    assert not different, f"(rows only incremental, rows only full refresh): {different}"


def test_day1_recomputes_only_the_changed_dates(dbt, daily_runs: dict) -> None:
    """A new usage day and October changes: the month-ends before October keep their rows."""
    as_of = daily_runs["day1"]["as_of"]
    for model in dbt.snapshotted:
        before = daily_runs["before"][model]
        after = daily_runs["day1"]["built_from"][model]
        (new,) = after[as_of]
        assert as_of not in before and new not in set().union(*before.values()), model
        kept = [d for d in after if d < date(2026, 10, 1)]
        assert kept, model
        for d in kept:
            assert after[d] == before[d], f"{model}: {d} was recomputed"
        assert after[date(2026, 10, 31)] == {new}, f"{model}: 2026-10-31 was not recomputed"


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
        for d in after:
            if d >= date(2026, 5, 1):
                assert after[d] == {new}, f"{model}: {d} was not recomputed"
            else:
                assert after[d] == before[d], f"{model}: {d} was recomputed"
