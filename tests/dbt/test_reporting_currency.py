"""The reporting currency and dated exchange rates (DECISIONLOG.md, "FX").

On the demo data (80 accounts x 8 months), built in USD, then:

1. rebuilt with `reporting_currency: JPY` on the same warehouse (incremental: the var is part
   of the build fingerprint, so every snapshot date is recomputed): every amount of every
   mart is the USD amount at the static JPY rate, the reconciliation still explains every
   month;
2. monthly rates for June and July 2026 loaded (`billing.exchange_rates`, JPY for June only)
   and built incrementally: each subscription version converts at the rates of the month it
   took effect (else the seed), only the snapshot dates from June on are recomputed, and the
   result equals a `--full-refresh` build.

A reporting currency without any rate fails the build with a message naming it, and one whose
monthly rates miss a month fails a test.
"""

from __future__ import annotations

import csv
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

SEED = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds" / "fx_rates.csv"
JPY = {"reporting_currency": "JPY"}
# the marts with amounts and their keys (account_features carries account_snapshots' columns)
MARTS_WITH_AMOUNTS = {
    "accounts": ["account_id"],
    "contracts": ["subscription_id"],
    "mrr_movements": ["account_id", "month_start"],
    "revenue_metrics_monthly": ["month_start"],
    "mrr_billing_reconciliation": ["month_start"],
    "account_snapshots": ["account_id", "snapshot_date"],
    "account_features": ["account_id", "snapshot_date"],
}
# (rate_month, currency) -> rate_to_usd, loaded as billing.exchange_rates
MONTHLY_RATES = {
    (date(2026, 6, 1), "EUR"): 1.15,
    (date(2026, 7, 1), "EUR"): 1.02,
    (date(2026, 6, 1), "GBP"): 1.31,
    (date(2026, 7, 1), "GBP"): 1.19,
    (date(2026, 6, 1), "JPY"): 0.0071,
}


def _static_rates() -> dict[str, float]:
    with SEED.open(newline="") as f:
        return {r["currency"]: float(r["rate_to_usd"]) for r in csv.DictReader(f)}


def _amount_columns(frame: pd.DataFrame) -> list[str]:
    """The columns in the reporting currency: MRR amounts, not the billing-currency *_local."""
    return [c for c in frame.columns if "mrr" in c and not c.endswith("_local")]


def _mart(dbt, warehouse: Path, name: str) -> pd.DataFrame:
    keys = ", ".join(MARTS_WITH_AMOUNTS[name])
    return dbt.read(warehouse, f"select * from marts.{name} order by {keys}")


@pytest.fixture(scope="module")
def currency_runs(dbt, landing: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from flows.ingest.load import load_landing
    from flows.warehouse import Warehouse

    work = tmp_path_factory.mktemp("dbt-reporting-currency")
    inbox, warehouse = work / "inbox", work / "warehouse.duckdb"
    shutil.copytree(landing, inbox)
    load_landing(inbox, Warehouse(warehouse, memory_limit="1GB"), "day-0")
    dbt.run(["build"], work, warehouse=warehouse)
    usd = dbt.copy(warehouse, work / "usd")

    dbt.run(["build", "--exclude", "test_type:unit"], work, warehouse=warehouse, dbt_vars=JPY)
    jpy = dbt.copy(warehouse, work / "jpy")
    built_before = {m: dbt.built_from(warehouse, m) for m in dbt.snapshotted}

    folder = inbox / "billing" / "exchange_rates"
    folder.mkdir(parents=True)
    with (folder / "exchange_rates_20261101.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rate_month", "currency", "rate_to_usd"])
        for (month, currency), rate in MONTHLY_RATES.items():
            writer.writerow([month.isoformat(), currency, rate])
    load_landing(inbox, Warehouse(warehouse, memory_limit="1GB"), "rates")
    dbt.run(["build", "--exclude", "test_type:unit"], work, warehouse=warehouse, dbt_vars=JPY)

    full = dbt.copy(warehouse, work / "full")
    dbt.run(["run", "--full-refresh"], work / "full", warehouse=full, dbt_vars=JPY)
    return {
        "usd": usd,
        "jpy": jpy,
        "dated": warehouse,
        "built_before": built_before,
        "built_after": {m: dbt.built_from(warehouse, m) for m in dbt.snapshotted},
        "differences": dbt.differences(warehouse, full),
    }


def test_jpy_amounts_are_the_usd_amounts_at_the_jpy_rate(dbt, currency_runs: dict) -> None:
    jpy_rate = _static_rates()["JPY"]
    for name in MARTS_WITH_AMOUNTS:
        usd = _mart(dbt, currency_runs["usd"], name)
        jpy = _mart(dbt, currency_runs["jpy"], name)
        amounts = _amount_columns(usd)
        assert amounts, name
        assert set(usd["reporting_currency"]) == {"USD"}, name
        assert set(jpy["reporting_currency"]) == {"JPY"}, name
        assert len(usd) == len(jpy) > 0, name
        for column in amounts:
            in_usd = usd[column].to_numpy(dtype=float)
            in_jpy = jpy[column].to_numpy(dtype=float)
            assert np.array_equal(np.isnan(in_usd), np.isnan(in_jpy)), f"{name}.{column}"
            close = np.isclose(in_jpy * jpy_rate, in_usd, rtol=1e-9, atol=1e-5, equal_nan=True)
            assert close.all(), f"{name}.{column}: {int((~close).sum())} row(s) differ"
        others = [c for c in usd.columns if c not in amounts and c != "reporting_currency"]
        pd.testing.assert_frame_equal(usd[others], jpy[others], check_exact=False, rtol=1e-9)


@pytest.mark.parametrize("build", ["usd", "jpy", "dated"])
def test_the_reconciliation_explains_every_month(dbt, currency_runs: dict, build: str) -> None:
    months = _mart(dbt, currency_runs[build], "mrr_billing_reconciliation")
    assert len(months) > 0
    assert np.allclose(months["unexplained_mrr"], 0, atol=1e-6)
    assert np.allclose(months["movements_closing_mrr"], months["contracted_mrr"], atol=1e-6)
    assert (months["invoiced_mrr"] > 0).any()


def test_each_version_converts_at_the_rates_of_the_month_it_took_effect(
    dbt, currency_runs: dict
) -> None:
    static = _static_rates()

    def rate(currency: str, month: date) -> float:
        return MONTHLY_RATES.get((month, currency), static[currency])

    versions = dbt.read(
        currency_runs["dated"],
        "select currency, valid_from, rate_month, mrr, "
        "unit_amount * quantity / billing_period_months as mrr_local "
        "from intermediate.int_subscription_versions_ranged",
    )
    months = [m.date() if isinstance(m, datetime) else m for m in versions["rate_month"]]
    starts = [v.date().replace(day=1) for v in versions["valid_from"]]
    assert months == starts
    expected = [
        float(local) * rate(currency, month) / rate("JPY", month)
        for currency, month, local in zip(
            versions["currency"], months, versions["mrr_local"], strict=True
        )
    ]
    assert np.allclose(versions["mrr"].astype(float), expected, rtol=1e-9, atol=1e-5)
    # the monthly rows were used: versions of June (JPY has a rate) and of July in EUR or GBP
    dated = [
        (month, currency) in MONTHLY_RATES or (month, "JPY") in MONTHLY_RATES
        for month, currency in zip(months, versions["currency"], strict=True)
    ]
    assert sum(dated) >= 3


def test_accounts_local_mrr_adds_up_their_contracts(dbt, currency_runs: dict) -> None:
    """An account billed in one currency: current_mrr_local is its contracts' sum, whatever
    rates the contracts were booked at."""
    frame = dbt.read(
        currency_runs["dated"],
        """
        select accounts.account_id, accounts.current_mrr_local,
            sum(contracts.current_mrr_local) as contracts_mrr_local
        from marts.accounts
        inner join marts.contracts on contracts.account_id = accounts.account_id
        group by all
        having bool_and(contracts.currency = accounts.billing_currency)
        """,
    )
    assert len(frame) > 10
    assert np.allclose(frame["current_mrr_local"], frame["contracts_mrr_local"], atol=1e-4)


def test_new_rates_recompute_the_dates_from_their_month(dbt, currency_runs: dict) -> None:
    """From June; a model with labels from the label horizon before June (an expansion in
    June is a label of the snapshots up to the horizon before it)."""
    for model in dbt.snapshotted:
        before, after = currency_runs["built_before"][model], currency_runs["built_after"][model]
        assert set(before) == set(after), model
        first = date(2026, 6, 1)
        if model in dbt.labelled:
            first -= timedelta(days=dbt.horizon_days)
        for d in after:
            if d < first:
                assert after[d] == before[d], f"{model}: {d} was recomputed"
            else:
                assert after[d] != before[d], f"{model}: {d} was not recomputed"


def test_an_incremental_build_with_new_rates_equals_a_full_refresh(
    dbt, currency_runs: dict
) -> None:
    differences = currency_runs["differences"]
    assert {f"intermediate.{m}" for m in dbt.snapshotted} <= set(differences)
    different = {t: d for t, d in differences.items() if d != (0, 0)}
    assert not different, f"(rows only incremental, rows only full refresh): {different}"


def test_a_reporting_currency_without_rates_fails_the_build(
    dbt, built_warehouse: Path, tmp_path: Path
) -> None:
    warehouse = dbt.copy(built_warehouse, tmp_path)
    result = dbt.run(
        ["run", "--select", "int_subscription_versions_ranged"],
        tmp_path,
        warehouse=warehouse,
        dbt_vars={"reporting_currency": "XYZ"},
        check=False,
    )
    assert not result.success
    (message,) = [r.message for r in result.result.results if r.status == "error"]
    assert "'XYZ'" in message
    assert "seeds/fx_rates.csv" in message and "billing.exchange_rates" in message

    # rates for one month only: the months without one are named by a test
    con = duckdb.connect(str(warehouse))
    try:
        con.execute(
            "insert into raw.billing__exchange_rates (rate_month, currency, rate_to_usd, "
            "_loaded_at, _source_file, _run_id) values "
            "(date '2026-06-01', 'ZAR', 0.055, now(), 'exchange_rates_zar.csv', 'test')"
        )
    finally:
        con.close()
    zar = {"reporting_currency": "ZAR"}
    dbt.run(  # the rates' staging table first: staging models see raw when they are built
        ["run", "--select", "stg_billing__exchange_rates", "int_subscription_versions_ranged"],
        tmp_path,
        warehouse=warehouse,
        dbt_vars=zar,
    )
    result = dbt.run(
        ["test", "--select", "assert_reporting_currency_has_rate_every_month"],
        tmp_path,
        warehouse=warehouse,
        dbt_vars=zar,
        check=False,
    )
    (outcome,) = [r for r in result.result.results if r.node.resource_type == "test"]
    assert outcome.status == "fail"
    assert outcome.failures > 1  # every month a version took effect in but June 2026
