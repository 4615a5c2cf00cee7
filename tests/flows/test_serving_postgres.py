"""PostgreSQL serving against the real server: a reader querying in a loop through two publishes
sees one whole version at a time and no error; types as in the serving DuckDB file; a publish
that fails midway (or cannot get readers' locks) leaves the previous version; history-only
publishes replace the history only."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from flows.delivery import serving_postgres
from flows.delivery.publish import PUBLISHED, publish
from flows.delivery.serving_postgres import PostgresServing, ServingPostgresError
from flows.settings import Settings
from flows.warehouse import Warehouse
from tests.conftest import PG_SERVER, fresh_postgres_database

pytestmark = pytest.mark.postgres

# every DuckDB type the marts and scores use
SELECT_TYPED = (
    "select range::bigint as id, range::integer as n, date '2026-10-31' as as_of, "
    "timestamp '2026-11-01 05:00:00' as scored_at, (range * 1.25)::decimal(18,2) as amount, "
    "range / 10.0 as p, range % 2 = 0 as flag, 'acct ' || range as name"
)


def _warehouse(path: Path, n: int, *, history: int | None = None) -> Path:
    """Every published relation with `n` rows of every type (the history `history` rows)."""
    with duckdb.connect(str(path)) as con:
        for relation in PUBLISHED.values():
            con.execute(f"create schema if not exists {relation.split('.')[0]}")
            rows = history if history is not None and relation.endswith("history") else n
            con.execute(f"create or replace table {relation} as {SELECT_TYPED} from range({rows})")
    return path


def _target(dsn: str, **kw: Any) -> PostgresServing:
    return PostgresServing(dsn, **kw)


def _version(pg: psycopg.Connection[Any], schema: str = "expansion") -> tuple[Any, ...]:
    """(run_id, rows of accounts, account_scores, account_score_history) in one transaction."""
    row = pg.execute(
        f"select (select run_id from {schema}._publication), "
        f"(select count(*) from {schema}.accounts), "
        f"(select count(*) from {schema}.account_scores), "
        f"(select count(*) from {schema}.account_score_history)"
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_a_reader_in_a_loop_sees_whole_versions_with_their_types(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = f"expansion_test_bi_{uuid.uuid4().hex[:8]}"
    admin_dsn = f"{PG_SERVER} dbname=postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'create role "{role}" nologin')
    try:
        with fresh_postgres_database() as (_, name):
            dsn = f"{PG_SERVER} dbname={name}"
            monkeypatch.setenv("TEST_SERVING_DSN", dsn)
            target = serving_postgres.from_settings(
                Settings(serving_dsn_env="TEST_SERVING_DSN", serving_readers=role)
            )
            assert target is not None and target.schema == "expansion"
            _publish_twice_under_a_reader(tmp_path, target, dsn, role)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'drop role if exists "{role}"')


def _publish_twice_under_a_reader(
    tmp_path: Path, target: PostgresServing, dsn: str, role: str
) -> None:
    wh, serving = tmp_path / "wh.duckdb", tmp_path / "serving"
    rows = {"run-1": 3, "run-2": 50, "run-3": 7}
    publish(Warehouse(_warehouse(wh, 3)), serving, "run-1", "2026-10-31", "v1", postgres=target)

    seen: list[tuple[Any, ...]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            with psycopg.connect(dsn) as reader:
                while not stop.is_set():
                    # three statements in one transaction, as a BI tool's query batch
                    run_id = reader.execute("select run_id from expansion._publication").fetchone()
                    accounts = reader.execute("select count(*) from expansion.accounts").fetchone()
                    scores = reader.execute(
                        "select count(*) from expansion.account_scores"
                    ).fetchone()
                    reader.commit()
                    seen.append(
                        (run_id and run_id[0], accounts and accounts[0], scores and scores[0])
                    )
                    seen.append(_version(reader)[:3])
                    reader.commit()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for run_id in ("run-2", "run-3"):
            _warehouse(wh, rows[run_id])
            report = publish(Warehouse(wh), serving, run_id, "2026-10-31", run_id, postgres=target)
            assert "switched" in report.postgres
        deadline = time.monotonic() + 5
        while not any(s[0] == "run-3" for s in seen) and time.monotonic() < deadline:
            time.sleep(0.02)  # the reader's next batch, on the last version
    finally:
        stop.set()
        thread.join(timeout=10)

    assert not errors, errors
    assert len(seen) > 10
    half = [s for s in seen if s[0] not in rows or s[1:] != (rows[s[0]], rows[s[0]])]
    assert not half, half[:5]
    assert {"run-1", "run-3"} <= {s[0] for s in seen}

    with psycopg.connect(dsn, autocommit=True) as pg:
        assert _version(pg) == ("run-3", 7, 7, 7)
        schemas = {r[0] for r in pg.execute("select nspname from pg_namespace").fetchall()}
        assert "expansion__new" not in schemas and "expansion__old" not in schemas
        # types per column as in the serving DuckDB file
        duck = duckdb.connect(str(serving / "expansion.duckdb"), read_only=True)
        try:
            for table in [*PUBLISHED, "_publication"]:
                in_duck = duck.execute(
                    "select column_name, data_type, numeric_precision, numeric_scale "
                    "from information_schema.columns where table_name = ? "
                    "order by ordinal_position",
                    [table],
                ).fetchall()
                in_pg = pg.execute(
                    "select column_name, data_type, numeric_precision, numeric_scale "
                    "from information_schema.columns where table_schema = 'expansion' "
                    "and table_name = %s order by ordinal_position",
                    [table],
                ).fetchall()
                assert [c[0] for c in in_pg] == [c[0] for c in in_duck], table
                for (column, dtype, precision, scale), pg_col in zip(in_duck, in_pg, strict=True):
                    expected = _expected_pg_type(dtype)
                    assert pg_col[1] == expected, (table, column, dtype, pg_col)
                    if dtype.startswith("DECIMAL"):
                        assert (pg_col[2], pg_col[3]) == (precision, scale), (table, column)
            # the values themselves: a date is a date, a decimal keeps its cents
            row = pg.execute(
                "select as_of, amount, scored_at, flag, name from expansion.account_scores "
                "where id = 5"
            ).fetchone()
            assert (
                row
                == duck.execute(
                    "select as_of, amount, scored_at, flag, name from account_scores where id = 5"
                ).fetchone()
            )
            assert str(row[0]) == "2026-10-31" and str(row[1]) == "6.25"  # type: ignore[index]
            assert duck.execute("select run_id from _publication").fetchone() == ("run-3",)
        finally:
            duck.close()
        # the BI role's grants survived both swaps
        with pg.transaction():
            pg.execute(f'set local role "{role}"')
            assert pg.execute("select count(*) from expansion.account_scores").fetchone() == (7,)


def _expected_pg_type(duckdb_type: str) -> str:
    simple = {
        "BIGINT": "bigint",
        "INTEGER": "integer",
        "DATE": "date",
        "TIMESTAMP": "timestamp without time zone",
        "DOUBLE": "double precision",
        "BOOLEAN": "boolean",
        "VARCHAR": "text",
    }
    return "numeric" if duckdb_type.startswith("DECIMAL") else simple[duckdb_type]


def test_a_publish_that_fails_midway_leaves_the_previous_version(
    tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _target(pg_database)
    wh, serving = tmp_path / "wh.duckdb", tmp_path / "serving"
    publish(Warehouse(_warehouse(wh, 3)), serving, "run-1", "2026-10-31", "v1", postgres=target)
    _warehouse(wh, 9)

    copy = serving_postgres._copy_table
    calls: list[str] = []

    def second_copy_fails(pg: Any, duck: Any, schema: str, table: str, **kw: Any) -> int:
        calls.append(table)
        if len(calls) == 2:
            raise psycopg.errors.DiskFull("could not extend file: No space left on device")
        return copy(pg, duck, schema, table, **kw)

    monkeypatch.setattr(serving_postgres, "_copy_table", second_copy_fails)
    with pytest.raises(ServingPostgresError) as failed:
        publish(Warehouse(wh), serving, "run-2", "2026-10-31", "v2", postgres=target)
    assert f"table expansion__new.{calls[1]}" in str(failed.value)
    assert "No space left" in str(failed.value)

    with psycopg.connect(pg_database, autocommit=True) as pg:
        assert _version(pg) == ("run-1", 3, 3, 3)
        assert pg.execute(
            "select count(*) from pg_namespace where nspname like 'expansion\\_\\_%'"
        ).fetchone() == (0,)
    # the serving file was not swapped either: both still agree on run-1
    with duckdb.connect(str(serving / "expansion.duckdb"), read_only=True) as duck:
        assert duck.execute("select run_id from _publication").fetchone() == ("run-1",)
        assert duck.execute("select count(*) from account_scores").fetchone() == (3,)
    assert not list(serving.glob(".*.tmp"))


def test_a_view_over_the_serving_tables_stops_the_swap_rather_than_being_dropped(
    tmp_path: Path, pg_database: str
) -> None:
    target = _target(pg_database)
    wh, serving = tmp_path / "wh.duckdb", tmp_path / "serving"
    publish(Warehouse(_warehouse(wh, 3)), serving, "run-1", "2026-10-31", "v1", postgres=target)
    with psycopg.connect(pg_database, autocommit=True) as pg:
        pg.execute("create schema bi")
        pg.execute("create view bi.top as select * from expansion.account_scores where p > 0.1")
    with pytest.raises(ServingPostgresError, match=r"bi\.top"):
        publish(Warehouse(_warehouse(wh, 4)), serving, "run-2", "2026-10-31", "v2", postgres=target)
    with psycopg.connect(pg_database, autocommit=True) as pg:
        assert _version(pg) == ("run-1", 3, 3, 3)
        assert pg.execute("select count(*) from bi.top").fetchone() == (1,)


def test_a_reader_holding_locks_past_lock_timeout_fails_the_publish_not_the_reader(
    tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving_postgres, "LOCK_TIMEOUT_MS", 200)
    monkeypatch.setattr(serving_postgres, "SWITCH_ATTEMPTS", 2)
    target = _target(pg_database)
    wh, serving = tmp_path / "wh.duckdb", tmp_path / "serving"
    publish(Warehouse(_warehouse(wh, 3)), serving, "run-1", "2026-10-31", "v1", postgres=target)
    _warehouse(wh, 4)
    with psycopg.connect(pg_database) as reader:  # one long transaction, as a BI extract
        assert reader.execute("select count(*) from expansion.accounts").fetchone() == (3,)
        with pytest.raises(ServingPostgresError, match="could not switch schema expansion"):
            publish(Warehouse(wh), serving, "run-2", "2026-10-31", "v2", postgres=target)
        # the reader's transaction goes on, on the version it started with
        assert reader.execute("select run_id from expansion._publication").fetchone() == ("run-1",)
        reader.commit()
    report = publish(Warehouse(wh), serving, "run-2", "2026-10-31", "v2", postgres=target)
    assert "switched" in report.postgres
    with psycopg.connect(pg_database, autocommit=True) as pg:
        assert _version(pg) == ("run-2", 4, 4, 4)


def test_a_history_only_publish_replaces_the_history_only(tmp_path: Path, pg_database: str) -> None:
    target = _target(pg_database)
    wh, serving = tmp_path / "wh.duckdb", tmp_path / "serving"
    publish(Warehouse(_warehouse(wh, 3)), serving, "run-1", "2026-10-31", "v1", postgres=target)
    _warehouse(wh, 8, history=11)  # a past date: the warehouse's history has grown
    report = publish(Warehouse(wh), serving, "run-2", "2026-09-30", "v2", postgres=target)
    assert report.history_only
    assert report.postgres.startswith("history replaced")
    with psycopg.connect(pg_database, autocommit=True) as pg:
        assert _version(pg) == ("run-1", 3, 3, 11)
        as_of = pg.execute("select as_of, model_version from expansion._publication").fetchone()
        assert as_of is not None and str(as_of[0]) == "2026-10-31" and as_of[1] == "v1"
    with duckdb.connect(str(serving / "expansion.duckdb"), read_only=True) as duck:
        assert duck.execute("select count(*) from account_score_history").fetchone() == (11,)


def test_postgres_newly_configured_gets_the_whole_version_on_a_history_only_publish(
    tmp_path: Path, pg_database: str
) -> None:
    wh, serving = tmp_path / "wh.duckdb", tmp_path / "serving"
    publish(Warehouse(_warehouse(wh, 3)), serving, "run-1", "2026-10-31", "v1")  # file only
    _warehouse(wh, 8, history=5)
    report = publish(
        Warehouse(wh), serving, "run-2", "2026-09-30", "v2", postgres=_target(pg_database)
    )
    assert report.history_only and "switched" in report.postgres
    with psycopg.connect(pg_database, autocommit=True) as pg:
        assert _version(pg) == ("run-1", 3, 3, 5)


def test_a_named_secret_that_holds_nothing_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SERVING_DSN", raising=False)
    with pytest.raises(ServingPostgresError, match="NO_SUCH_SERVING_DSN"):
        serving_postgres.from_settings(Settings(serving_dsn_env="NO_SUCH_SERVING_DSN"))
    assert serving_postgres.from_settings(Settings()) is None


def test_postgres_and_the_file_apart_are_reported_and_brought_together(
    tmp_path: Path, pg_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As a kill between the PostgreSQL switch and the rename leaves them (one version apart)."""
    target = _target(pg_database)
    wh, serving = tmp_path / "wh.duckdb", tmp_path / "serving"
    publish(Warehouse(_warehouse(wh, 3)), serving, "run-1", "2026-10-31", "v1", postgres=target)
    publish(Warehouse(_warehouse(wh, 4)), serving, "run-2", "2026-10-31", "v2")  # file only
    with caplog.at_level("WARNING", logger="flows.delivery.publish"):
        publish(Warehouse(_warehouse(wh, 6)), serving, "run-3", "2026-10-31", "v3", postgres=target)
    assert "holds run run-1 and the serving file" in caplog.text and "run run-2" in caplog.text
    with psycopg.connect(pg_database, autocommit=True) as pg:
        assert _version(pg) == ("run-3", 6, 6, 6)


def test_an_unreachable_server_fails_the_publish_naming_the_schema_not_the_password(
    tmp_path: Path,
) -> None:
    target = PostgresServing("postgresql://publisher:s3cret-pw@127.0.0.1:1/analytics", "bi")
    wh, serving = tmp_path / "wh.duckdb", tmp_path / "serving"
    with pytest.raises(ServingPostgresError) as failed:
        publish(Warehouse(_warehouse(wh, 3)), serving, "run-1", "2026-10-31", "v1", postgres=target)
    assert "schema bi" in str(failed.value) and "cannot connect" in str(failed.value)
    assert "s3cret-pw" not in str(failed.value)
    assert not (serving / "expansion.duckdb").exists()  # the file was not published either
