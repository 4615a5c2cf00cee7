"""MRR reconciles: the marts against the invoices and against the generator's own truth.

The demo generator writes `oracle/mrr_monthly.parquet`, every account's MRR at each month end
from its simulation state (never read by the pipeline). The movements bridge, summed from
its first month, must land on that figure for every account and month; and per month, the
invoices explain the same total with nothing left over.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.dbt.conftest import DBT_PROJECT, YEAR_MONTHS

CENT = 0.01


@pytest.fixture(scope="module")
def demo(year_landing: Path) -> Path:
    return year_landing.parent


@pytest.fixture(scope="module")
def warehouse(dbt, year_raw_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Over a year of demo data built up to the reconciliation mart, with its tests."""
    work = tmp_path_factory.mktemp("reconciliation")
    warehouse = dbt.copy(year_raw_warehouse, work)
    dbt.run(
        ["build", "--select", "+mrr_billing_reconciliation", "--indirect-selection", "cautious"],
        work,
        warehouse=warehouse,
    )
    return warehouse


@pytest.fixture(scope="module")
def movements(dbt, warehouse: Path) -> pd.DataFrame:
    return dbt.read(
        warehouse, "select account_id, month_start, closing_mrr from marts.mrr_movements"
    )


@pytest.fixture(scope="module")
def truth(demo: Path) -> pd.DataFrame:
    """The generator's MRR per account-month, converted with the project's rates seed."""
    oracle = demo / "oracle" / "mrr_monthly.parquet"
    rates = DBT_PROJECT / "seeds" / "fx_rates.csv"
    return duckdb.sql(
        f"""
        select t.account_id, t.month_start, t.mrr * r.rate_to_usd as truth_mrr
        from read_parquet('{oracle}') t
        join read_csv('{rates}', header = true) r using (currency)
        """
    ).df()


def test_movements_reach_the_generators_mrr_on_every_account_month(
    movements: pd.DataFrame, truth: pd.DataFrame
) -> None:
    window = movements[movements["month_start"] >= truth["month_start"].min()]
    both = window.merge(truth, on=["account_id", "month_start"], how="outer")
    # a month the bridge lists without MRR at its end (a churn) has no truth row, and a
    # truth row needs a bridge row: both sides default to zero only where the other has 0
    both = both.fillna({"closing_mrr": 0.0, "truth_mrr": 0.0})
    # the data set really spans the window
    assert truth["month_start"].nunique() == YEAR_MONTHS and len(truth) > 500
    off = both[(both["closing_mrr"] - both["truth_mrr"]).abs() >= CENT]
    assert off.empty, f"{len(off)} account-months differ from the generator:\n{off.head(10)}"


def test_monthly_totals_match_the_generator(movements: pd.DataFrame, truth: pd.DataFrame) -> None:
    ours = movements.groupby("month_start")["closing_mrr"].sum()
    theirs = truth.groupby("month_start")["truth_mrr"].sum()
    assert set(theirs.index) <= set(ours.index)  # history before the data window: no truth
    for month, value in theirs.items():
        assert ours[month] == pytest.approx(value, abs=CENT), month


def test_invoices_explain_the_mrr_of_every_month(dbt, warehouse: Path, demo: Path) -> None:
    rec = dbt.read(warehouse, "select * from marts.mrr_billing_reconciliation order by month_start")
    window_start = duckdb.sql(
        f"select min(month_start) from read_parquet('{demo}/oracle/mrr_monthly.parquet')"
    ).fetchall()[0][0]
    assert len(rec) >= YEAR_MONTHS
    # the bridge lands on the versions held at the close, and invoices explain all of it
    assert (rec["movements_closing_mrr"] - rec["contracted_mrr"]).abs().max() < CENT
    assert rec["unexplained_mrr"].abs().max() < CENT
    # the demo's invoices bill exactly the contract in force when they are issued
    assert rec["billing_variance_mrr"].abs().max() < CENT
    # once a full annual cycle lies inside the data, every held subscription is invoiced and
    # what was invoiced is most of the MRR; the rest has named causes
    full_cycle = rec[rec["month_start"] >= pd.Timestamp(window_start) + pd.DateOffset(months=11)]
    assert len(full_cycle) >= 3
    assert (full_cycle["not_invoiced_mrr"].abs() < CENT).all()
    assert (full_cycle["invoiced_mrr"] > 0.8 * full_cycle["contracted_mrr"]).all()
    assert rec["changed_since_invoiced_mrr"].abs().sum() > 0  # mid-period upgrades exist
