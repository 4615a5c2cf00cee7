"""Incremental usage staging: runs after each load give exactly what a full refresh gives.

The extracts arrive in two batches: the CRM and billing exports with the first 5 months of
usage, then the other 3 months plus a late correction file that re-sends one metric (the
first declared one in name order) of days loaded in the first batch. After an incremental run on each batch,
stg_usage__usage_daily and every mart must equal a `--full-refresh` build of the same raw.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

FIRST_BATCH_MONTHS = 5
FIRST_AS_OF = date(2026, 7, 31)  # the last day of the first 5 of the 8 generated months
CORRECTED_MONTH = "2026-04"
MODELS_AND_SEEDS = ["build", "--resource-type", "seed", "--resource-type", "model"]  # no tests


def _usage_files(landing: Path) -> list[Path]:
    return sorted((landing / "usage" / "usage_daily").glob("*.parquet"))


def _first_batch(landing: Path, inbox: Path) -> None:
    for source in ("crm", "billing"):
        shutil.copytree(landing / source, inbox / source)
    usage = inbox / "usage" / "usage_daily"
    usage.mkdir(parents=True)
    for path in _usage_files(landing)[:FIRST_BATCH_MONTHS]:
        shutil.copy(path, usage / path.name)


def _second_batch(landing: Path, inbox: Path) -> pd.DataFrame:
    """The remaining months and a correction of one metric on some April days."""
    usage = inbox / "usage" / "usage_daily"
    for path in _usage_files(landing)[FIRST_BATCH_MONTHS:]:
        shutil.copy(path, usage / path.name)
    april = pq.read_table(usage / f"usage_daily_{CORRECTED_MONTH}.parquet").to_pandas()
    metric = sorted(april["metric"].unique())[0]
    corrected = april[april["metric"] == metric].iloc[::7].copy()
    corrected["value"] = corrected["value"] + 3
    table = pa.Table.from_pandas(corrected.reset_index(drop=True), preserve_index=False)
    pq.write_table(
        table.cast(pq.read_schema(usage / f"usage_daily_{CORRECTED_MONTH}.parquet")),
        usage / f"usage_daily_{CORRECTED_MONTH}_correction.parquet",
    )
    return corrected


# when a row was written, not what it holds: differs between an incremental and a full build
LINEAGE = ["_built_at", "_inputs_loaded_at", "_build_fingerprint"]


def _table(dbt, warehouse: Path, relation: str) -> pd.DataFrame:
    frame = dbt.read(warehouse, f"select * from {relation}")
    frame = frame.drop(columns=[c for c in LINEAGE if c in frame.columns])
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.fixture(scope="module")
def batches(dbt, landing: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from flows.ingest.load import load_landing
    from flows.warehouse import Warehouse

    work = tmp_path_factory.mktemp("dbt-incremental")
    inbox, warehouse = work / "inbox", work / "warehouse.duckdb"

    _first_batch(landing, inbox)
    load_landing(inbox, Warehouse(warehouse, memory_limit="1GB"), "batch-1")
    dbt.run(MODELS_AND_SEEDS, work, warehouse=warehouse, as_of=FIRST_AS_OF)
    before = _table(dbt, warehouse, "staging.stg_usage__usage_daily")

    corrected = _second_batch(landing, inbox)
    load_landing(inbox, Warehouse(warehouse, memory_limit="1GB"), "batch-2")
    # data tests on the incremental state (unit tests do not depend on the data)
    dbt.run(["build", "--exclude", "test_type:unit"], work, warehouse=warehouse)
    model = Path("expansion", "models", "staging", "usage", "stg_usage__usage_daily.sql")
    compiled = (work / "target" / "compiled" / model).read_text()
    executed = (work / "target" / "run" / model).read_text()

    full = work / "full" / "warehouse.duckdb"
    full.parent.mkdir()
    shutil.copy(warehouse, full)
    dbt.run(["run", "--full-refresh"], work / "full", warehouse=full)
    return {
        "incremental": warehouse,
        "full": full,
        "before": before,
        "corrected": corrected,
        "compiled": compiled,
        "executed": executed,
    }


def test_second_run_is_incremental(batches: dict) -> None:
    assert "changed_days" in batches["compiled"], "the second run rebuilt the usage model"
    assert "delete from" in batches["executed"], "the second run did not delete+insert"


def test_late_correction_replaces_only_its_metric(dbt, batches: dict) -> None:
    corrected = batches["corrected"][["account_id", "usage_date", "metric", "value"]]
    corrected["usage_date"] = pd.to_datetime(corrected["usage_date"]).dt.date
    after = _table(dbt, batches["incremental"], "staging.stg_usage__usage_daily")
    for frame in (after, batches["before"]):
        frame["usage_date"] = pd.to_datetime(frame["usage_date"]).dt.date
    keys = ["account_id", "usage_date", "metric"]
    compared = after.merge(batches["before"], on=keys, suffixes=("", "_before"))
    fixed = compared.merge(corrected, on=keys, suffixes=("", "_sent"))
    assert len(fixed) == len(corrected) > 0
    assert (fixed["value"] == fixed["value_sent"]).all()
    assert (fixed["value"] == fixed["value_before"] + 3).all()
    # the other metrics of the corrected days, and every other day, kept their values
    days = corrected[["account_id", "usage_date"]].drop_duplicates()
    untouched = compared.merge(corrected[keys], on=keys, how="left", indicator=True)
    untouched = untouched[untouched["_merge"] == "left_only"]
    assert len(untouched.merge(days, on=["account_id", "usage_date"])) > 0
    assert (untouched["value"] == untouched["value_before"]).all()
    assert len(compared) == len(batches["before"])  # no day of the first batch was lost


@pytest.mark.parametrize(
    "relation",
    [
        "staging.stg_usage__usage_daily",
        "intermediate.int_account_usage_snapshotted",
        "marts.account_metric_snapshots",
        "marts.account_features",
        "marts.accounts",
        "marts.contracts",
        "marts.mrr_movements",
        "marts.revenue_metrics_monthly",
        "marts.account_snapshots",
    ],
)
def test_incremental_runs_equal_a_full_refresh(dbt, batches: dict, relation: str) -> None:
    pd.testing.assert_frame_equal(
        _table(dbt, batches["incremental"], relation),
        _table(dbt, batches["full"], relation),
        check_exact=True,
    )


def test_raw_reloaded_from_scratch_drops_days_no_longer_in_raw(
    dbt, batches: dict, tmp_path: Path
) -> None:
    """The loader's full refresh empties raw: the pre-hook must not keep vanished days."""
    warehouse = dbt.copy(batches["incremental"], tmp_path)
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("delete from raw.usage__usage_daily where usage_date < date '2026-05-01'")
        con.execute("update raw.usage__usage_daily set _loaded_at = _loaded_at + interval 1 day")
    finally:
        con.close()
    dbt.run(["run", "--select", "stg_usage__usage_daily"], tmp_path, warehouse=warehouse)
    first = dbt.read(warehouse, "select min(usage_date) as d from staging.stg_usage__usage_daily")
    assert pd.Timestamp(first["d"].iloc[0]).date() == date(2026, 5, 1)


def test_activities_reloaded_from_scratch_keep_only_what_raw_holds(
    dbt, batches: dict, tmp_path: Path
) -> None:
    """stg_crm__activities is incremental on activity_id the same way: after a raw reload
    (every row loaded anew, some gone) it holds exactly raw's activities, not none of them."""
    warehouse = dbt.copy(batches["incremental"], tmp_path)
    con = duckdb.connect(str(warehouse))
    try:
        ((kept,),) = con.execute(
            "select count(distinct trim(activity_id)) from raw.crm__activities "
            "where occurred_at >= timestamp '2026-05-01'"
        ).fetchall()
        con.execute("delete from raw.crm__activities where occurred_at < timestamp '2026-05-01'")
        con.execute("update raw.crm__activities set _loaded_at = _loaded_at + interval 1 day")
    finally:
        con.close()
    dbt.run(["run", "--select", "stg_crm__activities"], tmp_path, warehouse=warehouse)
    built = dbt.read(
        warehouse,
        "select count(*) as n, min(occurred_at) as first from staging.stg_crm__activities",
    )
    assert kept > 0 and int(built["n"].iloc[0]) == kept
    assert pd.Timestamp(built["first"].iloc[0]) >= pd.Timestamp("2026-05-01")
