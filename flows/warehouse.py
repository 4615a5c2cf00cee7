"""The one resource through which the pipeline opens DuckDB: the private warehouse, and (with
`Warehouse.file`) the serving file.

Every connection gets the same session settings (`Warehouse.session`, from
`flows.settings.Settings` through `session_settings`): memory limit, threads, the folder DuckDB
spills to and how much it may spill, and the time zone (UTC: every `*_at` column is UTC). dbt
opens the warehouse itself, with the same values through `profiles/profiles.yml`
(`Settings.dbt_env` calls `session_settings`).

The defaults come from the machine (`flows.machine`): a share of the RAM this process may use,
one thread per core, a spill folder under the state home holding at most half the free disk.
DuckDB's limit covers its buffer manager only; pandas frames and LightGBM live beside it, which
is why the share is well under DuckDB's own default of 80%.

DuckDB keeps one database instance per file per process and refuses a second connection whose
`duckdb.connect` config differs from the first's. So Python connects with no config and
`SET`s the session (settings are instance-wide: every connection sets the same values), and
`temp_directory`, which DuckDB will not change once it has spilled, is set only when it
differs. dbt connects with `temp_directory` in its config (profiles.yml `config_options`) and
never while a Python connection to the same file is open (it holds the file's write lock).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pandas as pd

from flows.files import private_dir
from flows.machine import DEFAULT_MEMORY_SHARE, free_disk, gib, machine_cores, machine_memory, mib

Connection = duckdb.DuckDBPyConnection


class WarehouseSettings(Protocol):
    """What a warehouse takes from `flows.settings.Settings` (which imports this module for
    `dbt_env`, so this one names the attributes instead of importing it)."""

    @property
    def warehouse(self) -> Path: ...

    duckdb_memory_share: float
    duckdb_memory_limit: str
    duckdb_threads: int
    duckdb_temp_dir: Path
    duckdb_max_temp_size: str | None

    def non_default(self) -> dict[str, str]: ...


TEMP_DISK_SHARE = 0.5  # of the disk free under the spill root; the rest: the files it spills from


def sql_str(value: str) -> str:
    """A SQL string literal (a quote in the value stays a quote)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Warehouse:
    """A DuckDB file and the session settings every connection to it gets."""

    path: Path
    memory_limit: str | None = None  # None: DEFAULT_MEMORY_SHARE of the RAM the process may use
    threads: int | None = None  # None: one per core this process may use
    temp_directory: Path | None = None  # the spill root; None: DuckDB's (`<file>.tmp` beside it)
    max_temp_size: str | None = None  # None: TEMP_DISK_SHARE of the free disk under the root
    timezone: str = "UTC"

    @classmethod
    def from_settings(cls, settings: WarehouseSettings) -> Warehouse:
        return cls(
            path=settings.warehouse,
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads,
            temp_directory=settings.duckdb_temp_dir,
            max_temp_size=settings.duckdb_max_temp_size,
        )

    def file(self, path: Path) -> Warehouse:
        """Another DuckDB file (the serving file, a scratch file) with the same settings."""
        return replace(self, path=path)

    def session(self) -> dict[str, str]:
        """The DuckDB settings of every connection to this file (and of dbt's, for the
        warehouse): `memory_limit`, `threads`, and with a spill root, `temp_directory` (this
        file's own folder in it: two files spilling to one folder would share file names) and
        `max_temp_directory_size`. Creates the spill root."""
        out = {
            "memory_limit": self.memory_limit
            or mib(int(machine_memory().total * DEFAULT_MEMORY_SHARE)),
            "threads": str(self.threads or machine_cores()),
        }
        if self.temp_directory is not None:
            root = private_dir(
                self.temp_directory.expanduser().absolute()
            )  # what it spills is private
            out["temp_directory"] = str(spill_folder(root, self.path))
            out["max_temp_directory_size"] = self.max_temp_size or spill_budget(root)
        return out

    @contextmanager
    def connect(self, *, read_only: bool = False, **options: Any) -> Iterator[Connection]:
        """A connection with the session settings applied; `options` are further `SET`s
        (e.g. `preserve_insertion_order=False`). Closed on exit."""
        con = self.open(read_only=read_only, **options)
        try:
            yield con
        finally:
            con.close()

    def open(self, *, read_only: bool = False, **options: Any) -> Connection:
        """A connection with the session settings applied, for a caller that keeps it past
        one block (and closes it): `connect` is the usual way."""
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.path), read_only=read_only)
        try:
            configure(con, self, **options)
        except BaseException:
            con.close()
            raise
        return con

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
            # distinct pairs, then counted: DuckDB's count(distinct) per group is 3x slower
            rows = con.execute(
                "select usage_date, count(*) from (select distinct usage_date, account_id "
                f"from {USAGE} where usage_date between ? and ?) group by usage_date",
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
    """Apply a warehouse's session settings to an open connection (see the module docstring
    for why they are `SET`, and `temp_directory` only when it differs)."""
    con.execute(f"set TimeZone = {sql_str(warehouse.timezone)}")
    session = warehouse.session()
    spill = session.pop("temp_directory", None)
    if spill is not None:
        row = con.execute("select current_setting('temp_directory')").fetchone()
        if row is None or Path(str(row[0])) != Path(spill):
            con.execute(f"set temp_directory = {sql_str(spill)}")
    for name, value in session.items():
        con.execute(f"set {name} = {sql_str(value)}")
    for name, value in options.items():
        if not name.isidentifier():
            raise ValueError(f"not a DuckDB setting name: {name!r}")
        literal = str(value).lower() if isinstance(value, bool) else sql_str(str(value))
        con.execute(f"set {name} = {literal}")


def spill_folder(root: Path, database: Path) -> Path:
    """The folder under `root` a database file spills to: its name and a hash of its path
    (the serving file and a scratch file may share a name)."""
    digest = hashlib.sha256(str(database.expanduser().absolute()).encode()).hexdigest()[:8]
    return root / f"{database.name}-{digest}.tmp"


BUDGET_FILE = "spill_budget"  # under the spill root: the budget the last process chose


@cache
def spill_budget(root: Path) -> str:
    """`max_temp_directory_size` under a spill root: TEMP_DISK_SHARE of the disk free there,
    rounded down to a power of two MiB, and kept from one process to the next while it stays
    between a quarter of that share and the share itself; read once per process (every
    connection to an instance must agree).

    Steady because the value reaches dbt's profile (`config_options`), and dbt parses the
    whole project again whenever the profile's connection settings differ from the last
    parse's ("profile has changed"): the exact share moves with every file written, so every
    run paid a full parse (9 s at M) instead of a partial one. Rounded, it still moved when the
    share crossed a power of two, back and forth for a disk that hovers there; kept (in
    `<root>/spill_budget`), it changes only when the disk fills past it or frees four times
    it."""
    share = int(free_disk(root) * TEMP_DISK_SHARE)
    kept = root / BUDGET_FILE
    try:
        last = int(kept.read_text().strip())
    except (OSError, ValueError):
        last = 0
    if 0 < last <= share < 4 * last:
        return mib(last)
    budget = round_down_pow2(share)
    with contextlib.suppress(OSError):  # read-only: the rounded budget holds between powers of 2
        kept.write_text(f"{budget}\n")
    return mib(budget)


def round_down_pow2(size: int) -> int:
    """The largest power of two MiB at most `size` bytes (`size` itself below 1 MiB)."""
    if size < 2**20:
        return size
    return 1 << (size.bit_length() - 1)


def session_settings(settings: WarehouseSettings) -> dict[str, str]:
    """The DuckDB session of the private warehouse: what every Python connection `SET`s and
    dbt gets through profiles/profiles.yml (`Settings.dbt_env`)."""
    return Warehouse.from_settings(settings).session()


def describe_session(settings: WarehouseSettings) -> str:
    """The session settings in words, with where each default came from: logged once per
    run, so a run's log says what memory it was given."""
    session = session_settings(settings)
    memory = machine_memory()
    why = {
        "memory_limit": f"{settings.duckdb_memory_share:.0%} of {gib(memory.total)} "
        f"({memory.source})",
        "threads": "one per core",
        "temp_directory": "under the state home",
        "max_temp_directory_size": f"{TEMP_DISK_SHARE:.0%} of the disk free there, rounded "
        "down to a power of two and kept while it fits",
    }
    chosen = settings.non_default()
    names = {
        "memory_limit": "EXPANSION_DUCKDB_MEMORY_LIMIT",
        "threads": "EXPANSION_DUCKDB_THREADS",
        "temp_directory": "EXPANSION_DUCKDB_TEMP_DIR",
        "max_temp_directory_size": "EXPANSION_DUCKDB_MAX_TEMP_SIZE",
    }
    parts = []
    for key, value in session.items():
        origin = "set" if names[key] in chosen else f"default: {why[key]}"
        parts.append(f"{key}={value} ({origin})")
    return "DuckDB session: " + ", ".join(parts)


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
