"""Connections to the private warehouse: the only place Python opens it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd


@contextmanager
def connect(
    path: Path, *, read_only: bool = False, memory_limit: str = "8GB"
) -> Iterator[duckdb.DuckDBPyConnection]:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"set memory_limit = '{memory_limit}'")
        yield con
    finally:
        con.close()


def read_frame(path: Path, sql: str, params: list[object] | None = None) -> pd.DataFrame:
    with connect(path, read_only=True) as con:
        return con.execute(sql, params or []).df()


def replace_table(con: duckdb.DuckDBPyConnection, relation: str, frame: pd.DataFrame) -> None:
    """Create or replace `schema.table` with the rows of `frame`."""
    schema = relation.split(".")[0]
    con.execute(f"create schema if not exists {schema}")
    con.register("_frame", frame)
    try:
        con.execute(f"create or replace table {relation} as select * from _frame")
    finally:
        con.unregister("_frame")


def latest_data_date(path: Path) -> date | None:
    """The last day with usage data in raw: the default as_of."""
    with connect(path, read_only=True) as con:
        row = con.execute("select max(usage_date) from raw.usage__usage_daily").fetchone()
    return row[0] if row and row[0] else None
