"""The PostgreSQL connector against the local server, in a throwaway database per module."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest
from pydantic import ValidationError

from flows.errors import ExtractError, TransientSourceError
from flows.ingest.connectors import Extract
from flows.ingest.connectors.postgres import (
    PostgresConnector,
    PostgresTableSpec,
    connector_from_config,
)
from flows.ingest.contract import Table, table
from flows.ingest.load import load_sources
from flows.ingest.sources import SourcesConfig, SourceSpec
from flows.warehouse import Warehouse
from tests.conftest import PG_SERVER, fresh_postgres_database

pytestmark = pytest.mark.postgres

SUBSCRIPTIONS = table("billing", "subscriptions")
CUSTOMERS = table("billing", "customers")

SCHEMA = """
create schema billing;
create table billing.customers (
    customer_id text primary key,
    crm_account_id text not null,
    currency text not null,
    created_at timestamptz not null,
    updated_at timestamptz not null
);
create table billing.subscriptions (
    subscription_id text primary key,
    customer_id text not null references billing.customers,
    product_id text not null,
    billing_period_months integer not null,
    term_months integer not null,
    started_at timestamptz not null,
    canceled_at timestamptz,
    updated_at timestamptz not null
);
insert into billing.customers values
    ('C2', 'A2', 'JPY', '2024-01-02 00:00:00+00', '2024-01-02 00:00:00+00'),
    ('C1', 'A1', 'USD', '2024-01-01 00:00:00+00', '2024-01-01 00:00:00+00');
insert into billing.subscriptions values
    ('S1', 'C1', 'P1', 1, 12, '2024-01-01 00:00:00+00', null, '2024-01-01 00:00:00+00'),
    ('S2', 'C2', 'P2', 12, 12, '2024-01-02 00:00:00+00', null, '2024-01-02 00:00:00+00');
"""


class FakeLedger:
    """What the loader's ledger answers: fingerprints loaded and the last watermark per table."""

    def __init__(self) -> None:
        self.fingerprints: set[str] = set()
        self.watermarks: dict[str, str] = {}

    def seen(self, fingerprint: str) -> bool:
        return fingerprint in self.fingerprints

    def last_watermark(self, table: Table) -> str | None:
        return self.watermarks.get(table.raw_relation)

    def record(self, extract: Extract) -> None:
        self.fingerprints.add(extract.fingerprint)
        if extract.watermark is not None:
            self.watermarks[extract.table.raw_relation] = extract.watermark


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with fresh_postgres_database() as (admin, name):
        # a non-UTC server default, so that the connector's SET TIME ZONE 'UTC' matters
        admin.execute(f"alter database \"{name}\" set timezone = 'America/New_York'")
        yield name


@pytest.fixture
def dsn(database: str) -> str:
    """A fresh billing schema with two customers and two subscriptions."""
    dsn = f"{PG_SERVER} dbname={database}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("drop schema if exists billing cascade")
        conn.execute(SCHEMA)
    return dsn


def _execute(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)


def _rows(extract: Extract) -> list[dict[str, str]]:
    with open(extract.uri, newline="") as f:
        return list(csv.DictReader(f))


def _connector(
    dsn: str, tmp_path: Path, run_id: str, **tables: PostgresTableSpec
) -> PostgresConnector:
    return PostgresConnector(dsn, tables, tmp_path / "staging", run_id, "billing")


def test_full_extract_of_a_table_is_a_csv_duckdb_reads(dsn: str, tmp_path: Path) -> None:
    ledger = FakeLedger()
    connector = _connector(
        dsn, tmp_path, "run1", customers=PostgresTableSpec(table="billing.customers")
    )

    [extract] = connector.extracts(CUSTOMERS, ledger)

    path = tmp_path / "staging" / "billing" / "customers" / "run1.csv"
    assert extract.uri == str(path) and extract.file_format == "csv"
    assert extract.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()
    assert extract.watermark is None
    assert extract.origin.startswith("postgresql://127.0.0.1:5432/expansion_test_")
    assert extract.origin.endswith("/billing.customers")
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    assert [r["customer_id"] for r in _rows(extract)] == ["C1", "C2"]  # ordered by primary key
    got = duckdb.read_csv(str(path))
    assert got.columns == [c.name for c in CUSTOMERS.columns]
    assert got.fetchall()[0][:3] == ("C1", "A1", "USD")

    # an unchanged table gives the same bytes: the ledger has seen them, nothing new
    ledger.record(extract)
    assert (
        _connector(
            dsn, tmp_path, "run2", customers=PostgresTableSpec(table="billing.customers")
        ).extracts(CUSTOMERS, ledger)
        == []
    )
    assert not (path.parent / "run2.csv").exists()


def test_watermark_fetches_only_rows_changed_since_the_last_extract(
    dsn: str, tmp_path: Path
) -> None:
    ledger = FakeLedger()
    spec = PostgresTableSpec(table="billing.subscriptions", watermark="updated_at")

    [first] = _connector(dsn, tmp_path, "run1", subscriptions=spec).extracts(SUBSCRIPTIONS, ledger)
    assert [r["subscription_id"] for r in _rows(first)] == ["S1", "S2"]
    assert first.watermark == "2024-01-02T00:00:00+00:00"
    ledger.record(first)

    _execute(
        dsn,
        "insert into billing.subscriptions values ('S3', 'C1', 'P1', 1, 1, "
        "'2024-02-01 00:00:00+00', null, '2024-02-01 00:00:00+00');"
        "update billing.subscriptions set canceled_at = '2024-02-15 00:00:00+00', "
        "updated_at = '2024-02-15 00:00:00.25+00' where subscription_id = 'S1'",
    )
    [second] = _connector(dsn, tmp_path, "run2", subscriptions=spec).extracts(SUBSCRIPTIONS, ledger)
    rows = _rows(second)
    assert [r["subscription_id"] for r in rows] == ["S1", "S3"]
    assert rows[0]["canceled_at"] == "2024-02-15 00:00:00+00"
    assert second.watermark == "2024-02-15T00:00:00.250000+00:00"
    assert second.uri.endswith("billing/subscriptions/run2.csv")
    ledger.record(second)

    assert (
        _connector(dsn, tmp_path, "run3", subscriptions=spec).extracts(SUBSCRIPTIONS, ledger) == []
    )


def test_query_spec_with_a_percent_sign_and_a_trailing_comment(dsn: str, tmp_path: Path) -> None:
    ledger = FakeLedger()
    spec = PostgresTableSpec(
        query="select s.*, c.currency as customer_currency\n"
        "from billing.subscriptions s join billing.customers c using (customer_id)\n"
        "where s.product_id like 'P%'  -- every product;\n",
        watermark="updated_at",
    )
    connector = _connector(dsn, tmp_path, "run1", subscriptions=spec)

    [extract] = connector.extracts(SUBSCRIPTIONS, ledger)

    assert extract.origin.endswith("/query:subscriptions")
    rows = _rows(extract)
    assert [(r["subscription_id"], r["customer_currency"]) for r in rows] == [
        ("S1", "USD"),
        ("S2", "JPY"),
    ]
    ledger.record(extract)
    _execute(
        dsn,
        "update billing.subscriptions set updated_at = '2024-03-01' where subscription_id = 'S2'",
    )
    [again] = _connector(dsn, tmp_path, "run2", subscriptions=spec).extracts(SUBSCRIPTIONS, ledger)
    assert [r["subscription_id"] for r in _rows(again)] == ["S2"]


def test_timestamptz_comes_out_in_utc(dsn: str, tmp_path: Path) -> None:
    _execute(
        dsn,
        "update billing.customers set updated_at = '2024-06-30 23:30:00-05:00' where customer_id = 'C1'",
    )
    spec = PostgresTableSpec(table="billing.customers", watermark="updated_at")

    [extract] = _connector(dsn, tmp_path, "run1", customers=spec).extracts(CUSTOMERS, FakeLedger())

    c1 = next(r for r in _rows(extract) if r["customer_id"] == "C1")
    assert c1["updated_at"] == "2024-07-01 04:30:00+00"  # the database's default is New York
    assert extract.watermark == "2024-07-01T04:30:00+00:00"


def test_only_configured_tables_are_extracted(dsn: str, tmp_path: Path) -> None:
    connector = _connector(
        dsn, tmp_path, "run1", customers=PostgresTableSpec(table="billing.customers")
    )
    assert connector.extracts(SUBSCRIPTIONS, FakeLedger()) == []
    assert connector.extracts(table("crm", "accounts"), FakeLedger()) == []
    with pytest.raises(ValueError, match="not in the extract contract"):
        _connector(dsn, tmp_path, "run1", accounts=PostgresTableSpec(table="crm.accounts"))


@pytest.mark.parametrize(
    "entry",
    [
        {"table": "billing.subscriptions; drop table billing.customers"},
        {"table": 'billing."subscriptions"'},
        {"table": "subscriptions"},
        {"table": "billing.subscriptions", "watermark": "updated_at) or (1=1"},
        {"query": "delete from billing.subscriptions"},
        {"table": "billing.subscriptions", "query": "select 1"},
        {"table": "billing.subscriptions", "watermark_column": "updated_at"},
    ],
)
def test_identifiers_and_queries_are_validated(entry: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        PostgresTableSpec.model_validate(entry)


@pytest.mark.parametrize(
    "query",
    [
        "select * form billing.subscriptions",  # syntax error
        "select subscription_id, no_such_column from billing.subscriptions",
        "select * from billing.no_such_table",
    ],
)
def test_bad_sql_in_a_query_names_source_table_and_entry(
    dsn: str, tmp_path: Path, query: str
) -> None:
    connector = _connector(dsn, tmp_path, "run1", subscriptions=PostgresTableSpec(query=query))

    with pytest.raises(ValueError) as raised:
        connector.extracts(SUBSCRIPTIONS, FakeLedger())

    message = str(raised.value)
    assert not isinstance(raised.value, TransientSourceError)
    assert "'billing'" in message and "billing.subscriptions" in message and query in message
    assert not any((tmp_path / "staging" / "billing" / "subscriptions").iterdir())


def test_unreachable_server_is_transient_and_hides_the_password(tmp_path: Path) -> None:
    dsn = "postgresql://postgres:s3cret-pw@127.0.0.1:1/billing_db?connect_timeout=2"
    connector = _connector(
        dsn, tmp_path, "run1", customers=PostgresTableSpec(table="billing.customers")
    )
    assert "s3cret" not in repr(connector)

    with pytest.raises(TransientSourceError) as raised:
        connector.extracts(CUSTOMERS, FakeLedger())

    message = str(raised.value)
    assert message.startswith("postgresql://127.0.0.1:1/billing_db/billing.customers: ")
    assert "s3cret" not in message and raised.value.__cause__ is None


def test_connector_from_config_reads_the_dsn_from_the_named_env_var(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {
        "type": "postgres",
        "dsn_env": "EXPANSION_TEST_BILLING_DSN",
        "tables": {"customers": {"table": "billing.customers", "watermark": "updated_at"}},
    }
    monkeypatch.delenv("EXPANSION_TEST_BILLING_DSN", raising=False)
    with pytest.raises(ValueError, match="EXPANSION_TEST_BILLING_DSN"):
        connector_from_config("billing", config, tmp_path, "run1")

    monkeypatch.setenv("EXPANSION_TEST_BILLING_DSN", dsn)
    connector = connector_from_config("billing", config, tmp_path, "run1")
    [extract] = connector.extracts(CUSTOMERS, FakeLedger())
    assert extract.watermark == "2024-01-02T00:00:00+00:00"

    # as flows/ingest/sources.py hands it over: the generic entry with the files-only keys unset
    dumped = {**config, "url": None, "storage_options": {}}
    assert connector_from_config("billing", dumped, tmp_path, "run2").extracts(
        CUSTOMERS, FakeLedger()
    )

    for bad in (
        {**config, "tables": {"customers": {"table": "billing.customers; --"}}},
        {**config, "tables": {"accounts": {"table": "crm.accounts"}}},
        {"type": "postgres", "dsn_evn": "EXPANSION_TEST_BILLING_DSN", "tables": {}},
    ):
        with pytest.raises(ValueError, match="source 'billing'"):
            connector_from_config("billing", bad, tmp_path, "run1")


def test_a_locked_table_is_transient(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flows.ingest.connectors.postgres.LOCK_TIMEOUT", "100ms")
    connector = _connector(
        dsn, tmp_path, "run1", customers=PostgresTableSpec(table="billing.customers")
    )
    with psycopg.connect(dsn) as migration:
        migration.execute("lock table billing.customers in access exclusive mode")
        with pytest.raises(TransientSourceError, match="lock timeout"):
            connector.extracts(CUSTOMERS, FakeLedger())


# --- values from PostgreSQL mean what they say (issue #18) -------------------------------------

VALUES_BILLING = """
create schema billing;
create table billing.products (product_id text primary key, product_name text, product_family text);
create table billing.plans (plan_id text primary key, product_id text, plan_name text,
    tier_rank int, list_price numeric(18,2), currency text);
create table billing.customers (customer_id text primary key, crm_account_id text, currency text,
    created_at timestamptz, updated_at timestamptz);
create table billing.subscriptions (subscription_id text primary key, customer_id text,
    product_id text, billing_period_months int, term_months int, started_at timestamptz,
    canceled_at timestamptz, updated_at timestamptz);
-- seats as numeric and the rate month as timestamptz, as real schemas have them
create table billing.subscription_changes (change_id text primary key, subscription_id text,
    effective_at timestamptz, plan_id text, quantity numeric, unit_amount numeric(18,2),
    currency text);
create table billing.exchange_rates (rate_month timestamptz, currency text, rate_to_usd float8,
    primary key (rate_month, currency));
insert into billing.products values ('P1', 'Core', 'core'), ('P2', 'Addon', 'addon');
insert into billing.plans values ('PL1', 'P1', 'Starter', 1, 10, 'USD'),
    ('PL2', 'P2', 'Addon', 1, 5, 'USD');
insert into billing.customers values
    ('C1', 'A1', 'USD', '2024-01-01 00:00+00', '2024-01-01 00:00+00'),
    ('C2', 'A1', 'USD', '2024-01-01 00:00+00', '9999-12-31 00:00+00');
insert into billing.subscriptions values ('S1', 'C1', 'P1', 1, 12, '2024-01-01', null, '2024-01-01');
insert into billing.subscription_changes values
    ('X1', 'S1', '2024-01-01', 'PL1', 5, 10, 'USD'),
    ('X2', 'S1', '2024-02-01', 'PL1', 5.000, 10, 'USD'),
    ('X3', 'S1', '2024-03-01', 'PL1', 120.5, 10, 'USD'),
    ('X4', 'S1', '2024-04-01', 'PL2', 5, 10, 'USD');
insert into billing.exchange_rates values
    ('2024-01-01 00:00+00', 'EUR', 1.1),
    ('2024-02-01 13:45+00', 'EUR', 1.1),
    ('2024-03-01 00:00+01', 'EUR', 1.1);  -- 2024-02-29 23:00 in UTC: not a date
"""


def _values_config(tmp_path: Path) -> SourcesConfig:
    landing = tmp_path / "landing"
    (landing / "crm" / "accounts").mkdir(parents=True)
    (landing / "crm" / "accounts" / "a.csv").write_text(
        "account_id,account_name,created_at,updated_at\nA1,Acme,2024-01-01,2024-01-01\n"
    )
    (landing / "usage" / "usage_daily").mkdir(parents=True)
    (landing / "usage" / "usage_daily" / "u.csv").write_text(
        "account_id,usage_date,metric,value\nA1,2024-01-02,active_users,2\n"
    )
    tables = ("products", "plans", "customers", "subscriptions", "subscription_changes")
    return SourcesConfig.model_validate(
        {
            "sources": {
                "crm": {"type": "files", "url": str(landing / "crm")},
                "usage": {"type": "files", "url": str(landing / "usage")},
                "billing": SourceSpec.model_validate(
                    {
                        "type": "postgres",
                        "dsn_env": "TEST_VALUES_DSN",
                        "tables": {
                            **{t: {"table": f"billing.{t}"} for t in tables},
                            "exchange_rates": {"table": "billing.exchange_rates"},
                        },
                    }
                ),
            },
            "bad_rows": {
                "tables": {
                    t: "quarantine"
                    for t in (
                        "billing.customers",
                        "billing.subscription_changes",
                        "billing.exchange_rates",
                    )
                }
            },
        }
    )


def _raw(wh: Path, sql_text: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(sql_text).fetchall()
    finally:
        con.close()


def test_postgres_values_are_never_cast_lossily_and_history_is_not_rewritten(
    pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """numeric seats -> INTEGER, timestamptz -> DATE, a version dated 9999-12-31 and a plan of
    another product are held back per row, naming origin, row and column; then a catalogue
    price changed in the database is rejected naming both versions, and raw stays as it was."""
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(VALUES_BILLING)
    monkeypatch.setenv("TEST_VALUES_DSN", pg_database)
    config, wh = _values_config(tmp_path), tmp_path / "wh.duckdb"

    report = load_sources(config, Warehouse(wh), "run-1", staging_dir=tmp_path / "extracts")

    named = sorted(
        (v.source_file.rsplit("/", 1)[-1], v.row, v.column, v.reason) for v in report.quarantined
    )
    assert [n[:3] for n in named] == [
        ("billing.customers", 2, "updated_at"),
        ("billing.exchange_rates", 2, "rate_month"),
        ("billing.exchange_rates", 3, "rate_month"),
        ("billing.subscription_changes", 3, "quantity"),
        ("billing.subscription_changes", 4, "plan_id"),
    ]
    assert "is in the future" in named[0][3]
    assert "is not a valid DATE" in named[1][3] and "is not a valid DATE" in named[2][3]
    assert "is not a valid INTEGER" in named[3][3]
    assert (
        "is P2, but billing.subscriptions.product_id (through subscription_id) is P1"
        in (named[4][3])
    )
    assert _raw(wh, "select change_id, quantity from raw.billing__subscription_changes") == [
        ("X1", 5),
        ("X2", 5),
    ]
    assert [str(r[0]) for r in _raw(wh, "select rate_month from raw.billing__exchange_rates")] == [
        "2024-01-01"
    ]

    # the price list changes in the database: a catalogue row may not change once loaded
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("update billing.plans set list_price = 12 where plan_id = 'PL1'")
    before = _raw(wh, "select * from raw.billing__plans order by all")
    ledger = _raw(wh, "select count(*) from raw._load_ledger")
    with pytest.raises(ExtractError) as info:
        load_sources(config, Warehouse(wh), "run-2", staging_dir=tmp_path / "extracts")
    [problem] = info.value.violations
    assert problem.source_file.endswith("/billing.plans") and problem.row == 1
    assert problem.column == "list_price" and problem.value == "12.00"
    assert "list_price was 10.00 (postgresql://" in problem.reason
    assert "/billing.plans, row 1, loaded " in problem.reason
    assert _raw(wh, "select * from raw.billing__plans order by all") == before
    assert _raw(wh, "select count(*) from raw._load_ledger") == ledger


def test_a_nested_postgres_column_is_refused_naming_it(dsn: str, tmp_path: Path) -> None:
    """A jsonb (or array) column would arrive as JSON text (a jsonb string with its quotes)."""
    spec = PostgresTableSpec(
        query="select 'P1' as product_id, 'Core' as product_name, "
        "to_jsonb('core'::text) as product_family, array[1, 2] as extra_ids"
    )
    connector = _connector(dsn, tmp_path, "run1", products=spec)
    with pytest.raises(ValueError, match=r"column\(s\) product_family \(jsonb\) hold nested"):
        connector.extracts(table("billing", "products"), FakeLedger())
    assert not list((tmp_path / "staging").rglob("*.csv*"))  # nothing left behind
