"""Load extracts from the landing zone into the private warehouse's `raw` schema.

Each contract table is read from `<landing>/<source>/<table>/` (CSV, CSV.gz, Parquet or JSON
Lines). Raw is append-only history with lineage columns (`_source_file`, `_loaded_at`,
`_run_id`); a load ledger (`raw._load_ledger`) records every file loaded with its checksum, so a
file is never loaded twice. A bad file fails the whole load with an error naming the file, row,
column and the expected type, and nothing of that load is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from flows.contract import TABLES, Table

log = logging.getLogger(__name__)

SUFFIXES = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".jsonl": "json",
    ".jsonl.gz": "json",
    ".ndjson": "json",
}
LINEAGE = {"_source_file": "VARCHAR", "_loaded_at": "TIMESTAMP", "_run_id": "VARCHAR"}


class ExtractError(ValueError):
    """An extract file does not meet the contract."""


@dataclass
class LoadedFile:
    table: str
    path: str
    rows: int
    sha256: str


@dataclass
class LoadReport:
    run_id: str
    loaded: list[LoadedFile] = field(default_factory=list)
    skipped_files: int = 0
    raw_rows: dict[str, int] = field(default_factory=dict)

    @property
    def rows_by_table(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.loaded:
            out[f.table] = out.get(f.table, 0) + f.rows
        return out


def _format_of(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, fmt in SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    return None


def discover_files(landing_dir: Path, table: Table) -> list[Path]:
    """Files of one contract table in the landing zone, oldest name first."""
    folder = landing_dir / table.source / table.name
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and _format_of(p))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw schema, one table per contract table (possibly empty), and the ledger."""
    con.execute("create schema if not exists raw")
    for t in TABLES:
        cols = [f'"{c.name}" {c.type}' for c in t.columns]
        cols += [f"{name} {type_}" for name, type_ in LINEAGE.items()]
        con.execute(f"create table if not exists raw.{t.raw_relation} ({', '.join(cols)})")
    con.execute(
        """
        create table if not exists raw._load_ledger (
            run_id varchar, table_name varchar, file_path varchar, sha256 varchar,
            row_count bigint, loaded_at timestamp
        )
        """
    )


def _reader(path: Path, fmt: str) -> str:
    p = str(path).replace("'", "''")
    if fmt == "csv":
        return f"read_csv('{p}', header=true, all_varchar=true, auto_detect=true)"
    if fmt == "parquet":
        return f"read_parquet('{p}')"
    return f"read_json('{p}', format='newline_delimited')"


def _cast_expr(quoted: str, type_: str) -> str:
    if type_ == "TIMESTAMP":
        # Offsets are honoured and converted to UTC; naive values are taken as UTC.
        return f"(try_cast({quoted} as timestamptz) at time zone 'UTC')"
    if type_ == "BOOLEAN":
        return f"try_cast({quoted} as boolean)"
    return f"try_cast({quoted} as {type_})"


def stage_file(con: duckdb.DuckDBPyConnection, table: Table, path: Path, staging_name: str) -> int:
    """Read one file into a temp table of contract types; raise ExtractError if it breaks the contract."""
    fmt = _format_of(path)
    assert fmt is not None
    try:
        con.execute(
            f"create or replace temp view _src as select *, row_number() over () as _row "
            f"from {_reader(path, fmt)}"
        )
        present = {r[0] for r in con.execute("describe _src").fetchall()}
    except duckdb.Error as exc:
        raise ExtractError(
            f"{path}: cannot be read as {fmt} for {table.source}.{table.name}: {exc}"
        ) from exc

    missing = [c for c in table.required_columns if c not in present]
    if missing:
        raise ExtractError(
            f"{path}: table {table.source}.{table.name} is missing required column(s) "
            f"{', '.join(missing)}; expected columns: {', '.join(c.name for c in table.columns)}"
        )

    selects = []
    for c in table.columns:
        if c.name in present:
            raw = f'"{c.name}"'
            if fmt == "csv":
                raw = f"nullif(trim({raw}), '')"
            selects.append(f'{_cast_expr(raw, c.type)} as "{c.name}"')
            selects.append(f'{raw} as "_orig_{c.name}"')
        else:
            selects.append(f'cast(null as {c.type}) as "{c.name}"')
    con.execute(
        f"create or replace temp table {staging_name} as select {', '.join(selects)}, _row from _src"
    )

    # Values that did not convert, and keys that are null.
    for c in table.columns:
        if c.name not in present:
            continue
        bad = con.execute(
            f'select _row, cast("_orig_{c.name}" as varchar) from {staging_name} '
            f'where "_orig_{c.name}" is not null and "{c.name}" is null order by _row limit 1'
        ).fetchone()
        if bad:
            raise ExtractError(
                f"{path}: row {bad[0]}, column {c.name}: value {bad[1]!r} is not a valid {c.type} "
                f"(table {table.source}.{table.name})"
            )
    for key in table.primary_key:
        bad = con.execute(
            f'select _row from {staging_name} where "{key}" is null order by _row limit 1'
        ).fetchone()
        if bad:
            raise ExtractError(
                f"{path}: row {bad[0]}, column {key}: primary key of {table.source}.{table.name} "
                "is empty; expected a value"
            )
    count = con.execute(f"select count(*) from {staging_name}").fetchone()
    return int(count[0]) if count else 0


def load_landing(
    landing_dir: Path,
    warehouse: Path,
    run_id: str | None = None,
    *,
    full_refresh: bool = False,
    memory_limit: str = "8GB",
) -> LoadReport:
    """Load every new landing file into raw, all or nothing."""
    run_id = run_id or uuid.uuid4().hex
    report = LoadReport(run_id=run_id)
    if not landing_dir.is_dir():
        raise ExtractError(f"landing zone {landing_dir} does not exist")
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    loaded_at = datetime.now(UTC).replace(tzinfo=None)
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"set memory_limit = '{memory_limit}'")
        ensure_raw_schema(con)
        con.execute("begin transaction")
        if full_refresh:
            for t in TABLES:
                con.execute(f"delete from raw.{t.raw_relation}")
            con.execute("delete from raw._load_ledger")
        seen = {r[0] for r in con.execute("select sha256 from raw._load_ledger").fetchall()}
        for t in TABLES:
            files = discover_files(landing_dir, t)
            for i, path in enumerate(files):
                digest = sha256_of(path)
                if digest in seen:
                    report.skipped_files += 1
                    continue
                staging = f"_stage_{t.raw_relation}_{i}"
                rows = stage_file(con, t, path, staging)
                cols = ", ".join(f'"{c.name}"' for c in t.columns)
                con.execute(
                    f"insert into raw.{t.raw_relation} ({cols}, _source_file, _loaded_at, _run_id) "
                    f"select {cols}, ?, ?, ? from {staging}",
                    [str(path), loaded_at, run_id],
                )
                con.execute(f"drop table {staging}")
                con.execute(
                    "insert into raw._load_ledger values (?, ?, ?, ?, ?, ?)",
                    [run_id, f"{t.source}.{t.name}", str(path), digest, rows, loaded_at],
                )
                seen.add(digest)
                report.loaded.append(LoadedFile(f"{t.source}.{t.name}", str(path), rows, digest))
                log.info("loaded %s rows of %s.%s from %s", rows, t.source, t.name, path)
        for t in TABLES:
            n = con.execute(f"select count(*) from raw.{t.raw_relation}").fetchone()
            report.raw_rows[f"{t.source}.{t.name}"] = int(n[0]) if n else 0
            if not t.optional and report.raw_rows[f"{t.source}.{t.name}"] == 0:
                raise ExtractError(
                    f"required table {t.source}.{t.name} has no rows: expected files under "
                    f"{landing_dir / t.source / t.name}"
                )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.close()
    return report


def main() -> None:  # pragma: no cover - developer convenience
    parser = argparse.ArgumentParser(description="Load landing-zone extracts into raw.")
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--full-refresh", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    report = load_landing(args.landing, args.warehouse, full_refresh=args.full_refresh)
    print(
        f"loaded {len(report.loaded)} files, skipped {report.skipped_files}: {report.rows_by_table}"
    )


if __name__ == "__main__":
    main()


def unload_run(warehouse: Path, run_id: str) -> int:
    """Take back everything one run loaded (used when the raw gate rejects it).

    The files stay in the landing zone and are not in the ledger any more, so the next run
    tries them again: nothing is lost, and nothing unchecked reaches the marts.
    """
    con = duckdb.connect(str(warehouse))
    removed = 0
    try:
        con.execute("begin transaction")
        for t in TABLES:
            row = con.execute(
                f"select count(*) from raw.{t.raw_relation} where _run_id = ?", [run_id]
            ).fetchone()
            removed += int(row[0]) if row else 0
            con.execute(f"delete from raw.{t.raw_relation} where _run_id = ?", [run_id])
        con.execute("delete from raw._load_ledger where run_id = ?", [run_id])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.close()
    log.warning("took back %s raw rows loaded by run %s", removed, run_id)
    return removed
