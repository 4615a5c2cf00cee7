"""The one resource through which the pipeline opens DuckDB: the private warehouse, and (with
`Warehouse.file`) the serving file.

Every connection gets the same session settings from `flows.settings.Settings`: memory limit,
threads, temp directory (where DuckDB spills what does not fit) and time zone (UTC: every
`*_at` column is UTC). dbt opens the warehouse itself, with the same values through
`profiles/profiles.yml` (`Settings.dbt_env`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

if TYPE_CHECKING:
    from flows.settings import Settings

Connection = duckdb.DuckDBPyConnection


def sql_str(value: str) -> str:
    """A SQL string literal (a quote in the value stays a quote)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Warehouse:
    """A DuckDB file and the session settings every connection to it gets."""

    path: Path
    memory_limit: str = "8GB"
    threads: int | None = None  # None: DuckDB's default (one per core)
    temp_directory: Path | None = None  # None: DuckDB's default (`<file>.tmp` beside it)
    timezone: str = "UTC"

    @classmethod
    def from_settings(cls, settings: Settings) -> Warehouse:
        return cls(
            path=settings.warehouse,
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads,
            temp_directory=settings.duckdb_temp_dir,
        )

    def file(self, path: Path) -> Warehouse:
        """Another DuckDB file (the serving file, a scratch file) with the same settings."""
        return replace(self, path=path)

    @contextmanager
    def connect(self, *, read_only: bool = False, **options: Any) -> Iterator[Connection]:
        """A connection with the session settings applied; `options` are further `SET`s
        (e.g. `preserve_insertion_order=False`). Closed on exit."""
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.path), read_only=read_only)
        try:
            configure(con, self, **options)
            yield con
        finally:
            con.close()

    def read_frame(self, sql: str, params: list[object] | None = None) -> pd.DataFrame:
        """One query's rows, read-only."""
        with self.connect(read_only=True) as con:
            return con.execute(sql, params or []).df()

    def exists(self) -> bool:
        return self.path.exists()

    def latest_data_date(self) -> date | None:
        """The last day with usage data in raw: the default as_of."""
        with self.connect(read_only=True) as con:
            row = con.execute("select max(usage_date) from raw.usage__usage_daily").fetchone()
        return row[0] if row and row[0] else None


def configure(con: Connection, warehouse: Warehouse, **options: Any) -> None:
    """Apply a warehouse's session settings to an open connection."""
    con.execute(f"set TimeZone = {sql_str(warehouse.timezone)}")
    con.execute(f"set memory_limit = {sql_str(warehouse.memory_limit)}")
    if warehouse.threads:
        con.execute(f"set threads = {int(warehouse.threads)}")
    if warehouse.temp_directory is not None:
        con.execute(f"set temp_directory = {sql_str(str(warehouse.temp_directory))}")
    for name, value in options.items():
        if not name.isidentifier():
            raise ValueError(f"not a DuckDB setting name: {name!r}")
        literal = str(value).lower() if isinstance(value, bool) else sql_str(str(value))
        con.execute(f"set {name} = {literal}")


def table_columns(con: Connection, relation: str) -> dict[str, str]:
    """Column name -> DuckDB type of `schema.table`, or of `database.schema.table` in an
    attached file (empty when it does not exist)."""
    *database, schema, name = relation.split(".")
    rows = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = coalesce(?, current_database()) and table_schema = ? "
        "and table_name = ? order by ordinal_position",
        [database[0] if database else None, schema, name],
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def replace_table(con: Connection, relation: str, frame: pd.DataFrame) -> None:
    """Create or replace `schema.table` with the rows of `frame`."""
    schema = relation.split(".")[0]
    con.execute(f"create schema if not exists {schema}")
    con.register("_frame", frame)
    try:
        con.execute(f"create or replace table {relation} as select * from _frame")
    finally:
        con.unregister("_frame")
