"""The whole project on PostgreSQL (`--target postgres`) gives the marts DuckDB gives.

The test creates its own database on the local server (127.0.0.1:5432, user postgres),
copies the `raw` schema of the small DuckDB warehouse into it with COPY, runs `dbt build
--target postgres` (models, data tests and unit tests) and compares row counts and MRR sums
of the marts with the DuckDB build of the same raw data. The database is dropped afterwards.
Skipped when no server answers or dbt-postgres is not installed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

# the server check runs first, before the (shared) DuckDB build is made for nothing
pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("postgres_server")]

psycopg = pytest.importorskip("psycopg")
SERVER = "host=127.0.0.1 port=5432 user=postgres connect_timeout=3"

# mart -> the amounts compared (summed) besides the row count
CHECKS = {
    "accounts": ["current_mrr", "current_mrr_local"],
    "contracts": ["current_mrr", "current_mrr_local"],
    "mrr_movements": ["closing_mrr", "expansion_mrr", "churn_mrr"],
    "revenue_metrics_monthly": ["mrr", "nrr"],
    "mrr_billing_reconciliation": [
        "contracted_mrr",
        "invoiced_mrr",
        "not_invoiced_mrr",
    ],
    "account_snapshots": ["mrr", "expansion_mrr_next", "max_limit_utilization"],
    "account_metric_snapshots": ["value_30d", "trend_28d", "utilization", "headroom"],
    "account_features": ["mrr"],
}
PG_TYPES = {"DOUBLE": "double precision", "FLOAT": "real", "HUGEINT": "numeric(38, 0)"}


def _copy_raw(warehouse: Path, dsn: str) -> None:
    """Every `raw` table of the DuckDB warehouse into schema raw of the PostgreSQL database."""
    source = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = source.execute(
            "select table_name from duckdb_tables() where schema_name = 'raw' order by 1"
        ).fetchall()
        with psycopg.connect(dsn) as pg:
            pg.execute("create schema raw")
            for (table,) in tables:
                columns = source.execute(
                    "select column_name, data_type from duckdb_columns() "
                    "where schema_name = 'raw' and table_name = ? order by column_index",
                    [table],
                ).fetchall()
                ddl = ", ".join(f'"{name}" {PG_TYPES.get(type_, type_)}' for name, type_ in columns)
                pg.execute(f"create table raw.{table} ({ddl})")
                rows = source.execute(f"select * from raw.{table}").fetchall()
                with pg.cursor().copy(f"copy raw.{table} from stdin") as copy:
                    for row in rows:
                        copy.write_row(row)
    finally:
        source.close()


@pytest.fixture(scope="session")
def postgres_server() -> None:
    pytest.importorskip("dbt.adapters.postgres", reason="dbt-postgres is not installed")
    try:
        psycopg.connect(f"{SERVER} dbname=postgres").close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 (make services starts it): {exc}")


@pytest.fixture(scope="module")
def postgres_db(postgres_server: None) -> Iterator[str]:
    name = f"expansion_dbt_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
        try:
            yield name
        finally:
            admin.execute(f'drop database "{name}" with (force)')


@pytest.fixture(scope="module")
def postgres_build(
    dbt, postgres_db: str, raw_warehouse: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    dsn = f"{SERVER} dbname={postgres_db}"
    _copy_raw(raw_warehouse, dsn)
    work = tmp_path_factory.mktemp("dbt-postgres")
    dbt.run(["build"], work, target="postgres", env={"EXPANSION_PG_DBNAME": postgres_db})
    return dsn


@pytest.mark.parametrize("mart", sorted(CHECKS))
def test_postgres_marts_match_duckdb(
    dbt, postgres_build: str, built_warehouse: Path, mart: str
) -> None:
    sums = ", ".join(f"sum({column})" for column in CHECKS[mart])
    query = f"select count(*), {sums} from marts.{mart}"
    expected = [float(v or 0) for v in dbt.read(built_warehouse, query).iloc[0]]
    with psycopg.connect(postgres_build) as pg:
        row = pg.execute(query).fetchone()
    assert row is not None
    actual = [float(v or 0) for v in row]
    assert actual[0] == expected[0], (
        f"{mart}: {actual[0]} rows on PostgreSQL, {expected[0]} on DuckDB"
    )
    assert actual == pytest.approx(expected, rel=1e-9, abs=1e-6), f"{mart}: {CHECKS[mart]}"
