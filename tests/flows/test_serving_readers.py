"""The recipes of docs/bi.md for DuckDB readers see a new version after a publish.

The SQLAlchemy recipes are tested on SQLAlchemy's own pools (`NullPool`, `QueuePool`) with a
DuckDB connection creator, the objects `create_engine(..., poolclass=...)` builds: duckdb-engine
adds the dialect, not the pooling. With duckdb-engine installed, the engine recipe is tested too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlalchemy import event, exc, pool

from flows.delivery.publish import PUBLISHED, publish
from flows.warehouse import Warehouse


def _warehouse(path: Path, n: int) -> Path:
    with duckdb.connect(str(path)) as con:
        for relation in PUBLISHED.values():
            con.execute(f"create schema if not exists {relation.split('.')[0]}")
            con.execute(f"create or replace table {relation} as select range as id from range({n})")
    return path


# --- the recipe, as docs/bi.md gives it ------------------------------------------------------
def serve_fresh(pool_or_engine: Any, path: str) -> None:
    """Each connection attaches the serving file read-only to an in-memory database of its own
    (`duckdb.connect(path)` would share one database instance per file and process, which keeps
    the old file open while any connection to it lives), and a pooled connection is replaced at
    checkout when the file was swapped since it attached."""

    @event.listens_for(pool_or_engine, "connect")
    def attach(dbapi_con: Any, record: Any) -> None:
        record.info["serving_file"] = _identity(path)  # before the attach: never newer than it
        dbapi_con.execute(f"attach '{path}' as expansion (read_only)")
        dbapi_con.execute("use expansion")

    @event.listens_for(pool_or_engine, "checkout")
    def check(dbapi_con: Any, record: Any, proxy: Any) -> None:
        if record.info.get("serving_file") != _identity(path):
            raise exc.DisconnectionError("a new serving version was published")


def _identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns)


def _memory() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(":memory:")


# -----------------------------------------------------------------------------------------------
def _publish(tmp_path: Path, n: int, run: str) -> str:
    wh = _warehouse(tmp_path / "wh.duckdb", n)
    report = publish(Warehouse(wh), tmp_path / "serving", run, "2026-10-31", run)
    return report.serving_db


def _read(con: Any) -> tuple[Any, ...]:
    """On the DBAPI connection itself: a DuckDB `cursor()` is a new client context, without the
    `use expansion` of the connection (duckdb-engine's cursors share the connection's)."""
    row = con.execute(
        "select (select run_id from _publication), (select count(*) from account_scores)"
    ).fetchone()
    return tuple(row)


def test_a_plain_shared_instance_goes_stale_which_is_why_the_recipe_attaches(
    tmp_path: Path,
) -> None:
    path = _publish(tmp_path, 3, "run-1")
    held = duckdb.connect(path, read_only=True)  # e.g. one pooled connection, still open
    _publish(tmp_path, 5, "run-2")
    again = duckdb.connect(path, read_only=True)  # the same instance: the old file
    assert _read(again) == ("run-1", 3)
    own_pool = pool.NullPool(_memory)
    serve_fresh(own_pool, path)
    own = own_pool.connect()  # its own instance: the new file
    assert _read(own) == ("run-2", 5)
    for con in (held, again, own):
        con.close()


def test_nullpool_sees_each_new_version(tmp_path: Path) -> None:
    path = _publish(tmp_path, 3, "run-1")
    nullpool = pool.NullPool(_memory)
    serve_fresh(nullpool, path)
    held = pool.QueuePool(lambda: duckdb.connect(path, read_only=True)).connect()  # a neighbour
    con = nullpool.connect()
    assert _read(con) == ("run-1", 3)
    con.close()
    _publish(tmp_path, 5, "run-2")
    con = nullpool.connect()
    assert _read(con) == ("run-2", 5)
    con.close()
    held.close()


def test_a_pooled_connection_reconnects_when_the_file_was_swapped(tmp_path: Path) -> None:
    path = _publish(tmp_path, 3, "run-1")
    queue = pool.QueuePool(_memory, pool_size=2)
    serve_fresh(queue, path)
    for _ in range(3):  # the pool keeps one connection and hands it out again
        con = queue.connect()
        assert _read(con) == ("run-1", 3)
        con.close()
    _publish(tmp_path, 5, "run-2")
    con = queue.connect()
    assert _read(con) == ("run-2", 5)
    con.close()
    con = queue.connect()  # and keeps the new one
    assert _read(con) == ("run-2", 5)
    con.close()
    queue.dispose()


def test_the_engine_recipe_with_duckdb_engine(tmp_path: Path) -> None:
    pytest.importorskip("duckdb_engine")
    from sqlalchemy import create_engine, text

    path = _publish(tmp_path, 3, "run-1")
    engine = create_engine("duckdb:///:memory:", poolclass=pool.QueuePool, pool_size=2)
    serve_fresh(engine, path)
    query = text("select (select run_id from _publication), (select count(*) from account_scores)")
    with engine.connect() as c:
        assert tuple(c.execute(query).one()) == ("run-1", 3)
    _publish(tmp_path, 5, "run-2")
    with engine.connect() as c:
        assert tuple(c.execute(query).one()) == ("run-2", 5)
    engine.dispose()
