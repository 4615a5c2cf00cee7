"""The billing source read from a real PostgreSQL server, through the loader into raw."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import psycopg
import pytest

from flows.ingest.load import load_sources
from flows.ingest.sources import SourcesConfig, SourceSpec
from flows.warehouse import Warehouse

pytestmark = pytest.mark.postgres

BILLING = """
create schema billing;
create table billing.products (product_id text primary key, product_name text, product_family text);
create table billing.plans (plan_id text primary key, product_id text, plan_name text,
    tier_rank int, list_price numeric(18,2), currency text);
create table billing.customers (customer_id text primary key, crm_account_id text, currency text,
    created_at timestamptz, updated_at timestamptz);
create table billing.subscriptions (subscription_id text primary key, customer_id text,
    product_id text, billing_period_months int, term_months int, started_at timestamptz,
    canceled_at timestamptz, updated_at timestamptz);
create table billing.subscription_changes (change_id text primary key, subscription_id text,
    effective_at timestamptz, plan_id text, quantity int, unit_amount numeric(18,2), currency text);
insert into billing.products values ('P1', 'Core', 'core');
insert into billing.plans values ('PL1', 'P1', 'Starter', 1, 1500, 'JPY');
insert into billing.customers values ('C1', 'A1', 'JPY', '2024-01-01 09:00+09', '2024-01-01 09:00+09');
insert into billing.subscriptions values ('S1', 'C1', 'P1', 12, 12, '2024-01-01', null, '2024-01-01');
insert into billing.subscription_changes values ('X1', 'S1', '2024-01-01', 'PL1', 5, 1200, 'JPY');
"""


@pytest.fixture
def billing_dsn(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(BILLING)
    monkeypatch.setenv("TEST_BILLING_DSN", pg_database)
    return pg_database


def _files(root: Path) -> None:
    accounts = root / "crm" / "accounts"
    accounts.mkdir(parents=True)
    (accounts / "a.csv").write_text(
        "account_id,account_name,segment,created_at,updated_at\nA1,Acme,smb,2024-01-01,2024-01-01\n"
    )
    usage = root / "usage" / "usage_daily"
    usage.mkdir(parents=True)
    pd.DataFrame(
        {
            "account_id": ["A1"],
            "usage_date": [pd.Timestamp("2024-01-02").date()],
            "metric": ["active_users"],
            "value": [2.0],
        }
    ).to_parquet(usage / "u.parquet")


def _count(wh: Path, table: str) -> int:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(f"select count(*) from raw.{table}").fetchone()[0]
    finally:
        con.close()


def test_billing_from_postgres_loads_incrementally(billing_dsn: str, tmp_path: Path) -> None:
    _files(tmp_path / "landing")
    wm = {"watermark": "updated_at"}
    config = SourcesConfig.model_validate(
        {
            "sources": {
                "crm": {"type": "files", "url": str(tmp_path / "landing" / "crm")},
                "usage": {"type": "files", "url": str(tmp_path / "landing" / "usage")},
                "billing": SourceSpec.model_validate(
                    {
                        "type": "postgres",
                        "dsn_env": "TEST_BILLING_DSN",
                        "tables": {
                            "products": {"table": "billing.products"},
                            "plans": {"table": "billing.plans"},
                            "customers": {"table": "billing.customers", **wm},
                            "subscriptions": {"table": "billing.subscriptions", **wm},
                            "subscription_changes": {
                                "query": "select * from billing.subscription_changes",
                                "watermark": "effective_at",
                            },
                        },
                    }
                ),
            }
        }
    )
    wh = tmp_path / "wh.duckdb"
    first = load_sources(config, Warehouse(wh), "run-1", staging_dir=tmp_path / "extracts")
    assert first.rows_by_table["billing.subscriptions"] == 1
    assert first.rows_by_table["billing.subscription_changes"] == 1
    con = duckdb.connect(str(wh), read_only=True)
    created, source = con.execute(
        "select created_at, _source_file from raw.billing__customers"
    ).fetchone()
    watermark = con.execute(
        "select watermark from raw._load_ledger where table_name = 'billing.subscriptions'"
    ).fetchone()[0]
    con.close()
    assert str(created) == "2024-01-01 00:00:00"  # +09 converted to UTC
    assert source.startswith("postgresql://") and "password" not in source
    assert watermark.startswith("2024-01-01")

    assert (
        load_sources(config, Warehouse(wh), "run-2", staging_dir=tmp_path / "extracts").loaded == []
    )
    assert _count(wh, "billing__subscriptions") == 1

    with psycopg.connect(billing_dsn, autocommit=True) as conn:
        conn.execute(
            "update billing.subscriptions set canceled_at = '2024-06-01', updated_at = '2024-06-01'"
        )
    third = load_sources(config, Warehouse(wh), "run-3", staging_dir=tmp_path / "extracts")
    # only the changed row comes; unchanged tables without a watermark dedupe by fingerprint
    assert third.rows_by_table == {"billing.subscriptions": 1}
    assert _count(wh, "billing__subscriptions") == 2  # a new version, appended to raw history
