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

    def latest_data_date(self, *, until: date | None = None) -> date | None:
        """The last day with usage data in raw (on or before `until`, when given)."""
        with self.connect(read_only=True) as con:
            row = con.execute(
                f"select max(usage_date) from {USAGE} where ? is null or usage_date <= ?",
                [until, until],
            ).fetchone()
        return row[0] if row and row[0] else None

    def accounts_per_usage_day(self, since: date, until: date) -> dict[date, int]:
        """How many accounts have usage on each day in [since, until] (days with rows only)."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                f"select usage_date, count(distinct account_id) from {USAGE} "
                "where usage_date between ? and ? group by usage_date",
                [since, until],
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def usage_rows_after(self, day: date, *, sample: int = 5) -> UsageAfter:
        """The raw usage rows dated after `day`: how many, per source file their count and
        dates, and the first few rows (key columns, file, and the row number when raw keeps
        one) for a message."""
        with self.connect(read_only=True) as con:
            columns = table_columns(con, USAGE)
            row_col = next((c for c in ("_row", "_source_row") if c in columns), None)
            files = con.execute(
                f"select _source_file, count(*), min(usage_date), max(usage_date) from {USAGE} "
                "where usage_date > ? group by _source_file order by min(usage_date), 1",
                [day],
            ).fetchall()
            shown = ", ".join(["account_id", "usage_date", "metric", "_source_file"])
            order = f"usage_date, _source_file{', ' + row_col if row_col else ''}, account_id"
            rows = con.execute(
                f"select {shown}{', ' + row_col if row_col else ', null'} from {USAGE} "
                f"where usage_date > ? order by {order} limit {int(sample)}",
                [day],
            ).fetchall()
        return UsageAfter(
            rows=sum(int(f[1]) for f in files),
            files=[(str(f[0]), int(f[1]), f[2], f[3]) for f in files],
            sample=[
                {"account_id": r[0], "usage_date": r[1], "metric": r[2], "file": r[3], "row": r[4]}
                for r in rows
            ],
        )


USAGE = "raw.usage__usage_daily"  # the table whose days set a run's as_of


@dataclass(frozen=True)
class UsageAfter:
    """Raw usage rows after a date: their count, per file (file, rows, first and last date),
    and a sample of rows."""

    rows: int
    files: list[tuple[str, int, date, date]]
    sample: list[dict[str, Any]]


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
