from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from flows.contract import TABLES
from flows.load import ExtractError, load_landing

ACCOUNTS_HEADER = "account_id,account_name,industry,country,employee_count,segment,owner_name,owner_email,created_at,updated_at"


def _write(landing: Path, source: str, table: str, name: str, text: str) -> Path:
    path = landing / source / table / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _minimal_landing(landing: Path) -> None:
    """One row in every required table; optional tables absent."""
    _write(
        landing,
        "crm",
        "accounts",
        "accounts_1.csv",
        ACCOUNTS_HEADER
        + "\nA1,Acme,tech,US,10,smb,Jo,jo@example.com,2024-01-01T00:00:00Z,2024-01-01T00:00:00Z\n",
    )
    _write(
        landing,
        "billing",
        "products",
        "p.csv",
        "product_id,product_name,product_family\nP1,Core,core\n",
    )
    _write(
        landing,
        "billing",
        "plans",
        "p.csv",
        "plan_id,product_id,plan_name,tier_rank,list_price_usd,storage_limit_gb,api_calls_limit\n"
        "PL1,P1,Starter,1,10.00,100,\n",
    )
    _write(
        landing,
        "billing",
        "customers",
        "c.csv",
        "customer_id,crm_account_id,currency,created_at,updated_at\nC1,A1,USD,2024-01-01,2024-01-01\n",
    )
    _write(
        landing,
        "billing",
        "subscriptions",
        "s.csv",
        "subscription_id,customer_id,product_id,billing_period_months,term_months,started_at,canceled_at,updated_at\n"
        "S1,C1,P1,12,12,2024-01-01,,2024-01-01\n",
    )
    _write(
        landing,
        "billing",
        "subscription_changes",
        "s.csv",
        "change_id,subscription_id,effective_at,plan_id,quantity,unit_amount,currency\n"
        "X1,S1,2024-01-01,PL1,5,120.00,USD\n",
    )
    usage = landing / "usage" / "usage_daily" / "usage_daily_2024-01.parquet"
    usage.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "account_id": ["A1"],
            "usage_date": [pd.Timestamp("2024-01-02").date()],
            "metric": ["active_users"],
            "value": [3.0],
        }
    ).to_parquet(usage)


def _count(warehouse: Path, table: str) -> int:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(f"select count(*) from raw.{table}").fetchone()[0]
    finally:
        con.close()


def test_loads_every_table_once_and_records_lineage(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh.duckdb"
    _minimal_landing(landing)
    report = load_landing(landing, wh, "run-1")
    assert report.rows_by_table["crm.accounts"] == 1
    assert report.raw_rows["crm.nps_responses"] == 0  # optional table exists, empty
    again = load_landing(landing, wh, "run-2")
    assert again.loaded == [] and again.skipped_files == len(report.loaded)
    assert _count(wh, "crm__accounts") == 1
    con = duckdb.connect(str(wh), read_only=True)
    row = con.execute("select _run_id, _source_file, created_at from raw.crm__accounts").fetchone()
    con.close()
    assert row[0] == "run-1" and row[1].endswith("accounts_1.csv")
    assert str(row[2]) == "2024-01-01 00:00:00"
    assert set(report.raw_rows) == {f"{t.source}.{t.name}" for t in TABLES}


def test_offsets_are_converted_to_utc_and_gzip_is_read(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh.duckdb"
    _minimal_landing(landing)
    path = landing / "crm" / "accounts" / "accounts_2.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(
            ACCOUNTS_HEADER
            + "\nA2,Beta,,DE,,mid_market,,,2024-02-01T10:00:00+02:00,2024-02-01T10:00:00+02:00\n"
        )
    load_landing(landing, wh, "run-1")
    con = duckdb.connect(str(wh), read_only=True)
    value = con.execute(
        "select created_at from raw.crm__accounts where account_id = 'A2'"
    ).fetchone()[0]
    con.close()
    assert str(value) == "2024-02-01 08:00:00"


def test_bad_value_names_file_row_column_and_loads_nothing(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh.duckdb"
    _minimal_landing(landing)
    load_landing(landing, wh, "run-1")
    bad = _write(
        landing,
        "crm",
        "accounts",
        "accounts_3.csv",
        ACCOUNTS_HEADER + "\nA3,Ok,,US,12,smb,,,2024-01-01,2024-01-01\n"
        "A4,Bad,,US,twelve,smb,,,2024-01-01,2024-01-01\n",
    )
    with pytest.raises(ExtractError) as info:
        load_landing(landing, wh, "run-2")
    message = str(info.value)
    assert str(bad) in message and "row 2" in message and "employee_count" in message
    assert "'twelve'" in message and "INTEGER" in message
    assert _count(wh, "crm__accounts") == 1  # nothing of the failed load was kept


def test_missing_required_column_is_named(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh.duckdb"
    _minimal_landing(landing)
    _write(landing, "billing", "products", "p.csv", "product_id,product_name\nP1,Core\n")
    with pytest.raises(
        ExtractError, match=r"billing.products is missing required column\(s\) product_family"
    ):
        load_landing(landing, wh, "run-1")


def test_missing_required_table_is_named(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh.duckdb"
    _minimal_landing(landing)
    for f in (landing / "billing" / "plans").iterdir():
        f.unlink()
    with pytest.raises(ExtractError, match=r"required table billing\.plans has no rows"):
        load_landing(landing, wh, "run-1")


def test_empty_primary_key_is_rejected(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh.duckdb"
    _minimal_landing(landing)
    _write(
        landing,
        "billing",
        "products",
        "p2.csv",
        "product_id,product_name,product_family\n,Nameless,addon\n",
    )
    with pytest.raises(ExtractError, match="row 1, column product_id: primary key"):
        load_landing(landing, wh, "run-1")
