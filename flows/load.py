"""Load extracts into the private warehouse's `raw` schema, checked against the contract.

Connectors (`flows/connectors/`) say what is new for each contract table; this module reads
each extract with DuckDB, checks it against `flows/contract.py` and appends it to
`raw.<source>__<table>` with lineage columns (`_source_file`, `_loaded_at`, `_run_id`) and the
unknown extra columns as JSON (`_extra`). The ledger `raw._load_ledger` records every extract
(file, rows, checksum, watermark, run id), so nothing is loaded twice.

Rows that break the contract are listed with file, row, column, value and reason. Per table,
the `bad_rows` policy (config/sources.yml) either fails the whole load (default: nothing of it
is kept) or moves the bad rows to `raw._quarantine` and loads the rest.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import fsspec

from flows.connectors import Extract
from flows.contract import TABLES, TABLES_BY_KEY, Column, Table
from flows.currencies import MINOR_UNITS
from flows.sources import BadRows, SourcesConfig, build_connector, files_config

log = logging.getLogger(__name__)

LINEAGE = {
    "_source_file": "VARCHAR",
    "_loaded_at": "TIMESTAMP",
    "_run_id": "VARCHAR",
    "_extra": "JSON",
}
MAX_LISTED = 20  # violations spelled out in an error message; all are in raw._quarantine


@dataclass(frozen=True)
class Violation:
    table: str
    source_file: str
    row: int | None  # data row, 1 = first row after a CSV header; None = the whole file
    column: str | None
    value: str | None
    reason: str

    def describe(self) -> str:
        where = [self.source_file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column {self.column}")
        value = f" value {self.value!r}" if self.value is not None else ""
        return f"{', '.join(where)}:{value} {self.reason} (table {self.table})"


class ExtractError(ValueError):
    """Extracts break the contract (or cannot be read); nothing of the load was kept."""

    def __init__(self, message: str, violations: list[Violation] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []


@dataclass
class LoadedFile:
    table: str
    path: str
    rows: int
    sha256: str
    quarantined_rows: int = 0
    watermark: str | None = None
    status: str = "loaded"  # loaded | quarantined (the whole file)


@dataclass
class LoadReport:
    run_id: str
    loaded: list[LoadedFile] = field(default_factory=list)
    skipped_files: int = 0
    raw_rows: dict[str, int] = field(default_factory=dict)
    quarantined: list[Violation] = field(default_factory=list)

    @property
    def rows_by_table(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.loaded:
            out[f.table] = out.get(f.table, 0) + f.rows
        return out

    @property
    def quarantined_by_table(self) -> dict[str, int]:
        return dict(Counter(v.table for v in self.quarantined))


# --- schema ------------------------------------------------------------------------------------


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create raw tables (one per contract table, possibly empty), the ledger and quarantine."""
    con.execute("create schema if not exists raw")
    for t in TABLES:
        cols = [f'"{c.name}" {c.type}' for c in t.columns]
        cols += [f"{name} {type_}" for name, type_ in LINEAGE.items()]
        con.execute(f"create table if not exists raw.{t.raw_relation} ({', '.join(cols)})")
        con.execute(f"alter table raw.{t.raw_relation} add column if not exists _extra JSON")
    con.execute(
        """
        create table if not exists raw._load_ledger (
            run_id varchar, table_name varchar, file_path varchar, sha256 varchar,
            row_count bigint, loaded_at timestamp
        )
        """
    )
    for column, type_ in (
        ("watermark", "varchar"),
        ("status", "varchar"),
        ("quarantined_rows", "bigint"),
    ):
        con.execute(f"alter table raw._load_ledger add column if not exists {column} {type_}")
    con.execute(
        """
        create table if not exists raw._quarantine (
            run_id varchar, table_name varchar, source_file varchar, row_number bigint,
            column_name varchar, value varchar, reason varchar, disposition varchar,
            recorded_at timestamp
        )
        """
    )


class LedgerView:
    """What the ledger already holds, as connectors need it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, ignore: bool) -> None:
        self.skipped = 0
        if ignore:
            self._seen: set[str] = set()
            self._watermarks: dict[str, str] = {}
            return
        self._seen = {r[0] for r in con.execute("select sha256 from raw._load_ledger").fetchall()}
        # The watermark of each table's latest load (watermarks only grow; comparing them as
        # text would put "9" after "10").
        self._watermarks = dict(
            con.execute(
                "select table_name, arg_max(watermark, loaded_at) from raw._load_ledger "
                "where watermark is not null group by 1"
            ).fetchall()
        )

    def seen(self, fingerprint: str) -> bool:
        if fingerprint in self._seen:
            self.skipped += 1
            return True
        return False

    def last_watermark(self, table: Table) -> str | None:
        return self._watermarks.get(f"{table.source}.{table.name}")


# --- reading and checking one extract --------------------------------------------------------


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _csv_header(extract: Extract) -> list[str]:
    """Column names from the first line (BOM stripped), read the way a person would."""
    with fsspec.open(extract.uri, "rb", compression="infer") as fh:
        first = fh.readline()
    if not first.strip():
        raise _FileProblem("the file is empty: expected a header line with the column names")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _FileProblem("the header line is not UTF-8: files must be UTF-8 encoded") from None
    names = next(csv.reader(io.StringIO(text)))
    names = [n.strip() for n in names]
    dupes = sorted(n for n, k in Counter(names).items() if k > 1)
    if dupes:
        raise _FileProblem(f"the header repeats column(s) {', '.join(dupes)}")
    return names


class _FileProblem(Exception):
    """A whole file cannot be used."""


def _reader(extract: Extract) -> tuple[str, list[str] | None]:
    uri = _sql_str(extract.uri)
    if extract.file_format == "csv":
        names = _csv_header(extract)
        columns = "{" + ", ".join(f"{_sql_str(n)}: 'VARCHAR'" for n in names) + "}"
        return (
            f"read_csv({uri}, header=true, auto_detect=false, columns={columns}, delim=',', "
            "quote='\"', escape='\"', strict_mode=true, null_padding=false)",
            names,
        )
    if extract.file_format == "parquet":
        return f"read_parquet({uri})", None
    return f"read_json({uri}, format='newline_delimited')", None


def _typed(raw: str, type_: str) -> str:
    if type_ == "TIMESTAMP":
        # Offsets are honoured and converted to UTC; naive values are taken as UTC.
        return f"(try_cast({raw} as timestamptz) at time zone 'UTC')"
    return f"try_cast({raw} as {type_})"


def _duckdb_reason(exc: duckdb.Error) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    keep = [ln for ln in lines if not ln.startswith(("Possible", "*", "Original Line"))]
    return " ".join(keep[:3])


def stage_extract(
    con: duckdb.DuckDBPyConnection, extract: Extract, staging: str, first: bool
) -> int:
    """Append one extract to the temp table `staging` (typed + original values + _file/_row)."""
    table = extract.table
    try:
        reader, _ = _reader(extract)
        con.execute(
            f"create or replace temp view _src as select *, row_number() over () as _row from {reader}"
        )
        present = [r[0] for r in con.execute("describe _src").fetchall() if r[0] != "_row"]
    except _FileProblem as exc:
        raise _FileProblem(str(exc)) from None
    except duckdb.Error as exc:
        raise _FileProblem(
            f"cannot be read as {extract.file_format}: {_duckdb_reason(exc)}"
        ) from exc

    missing = [c for c in table.required_columns if c not in present]
    if missing:
        raise _FileProblem(
            f"missing required column(s) {', '.join(missing)}; "
            f"expected columns: {', '.join(c.name for c in table.columns)}"
        )
    known = {c.name for c in table.columns}
    extras = [c for c in present if c not in known]
    selects = []
    for c in table.columns:
        if c.name in present:
            raw = f"nullif(trim(cast(\"{c.name}\" as varchar)), '')"
            selects.append(f'{_typed(raw, c.type)} as "{c.name}"')
            selects.append(f'{raw} as "_orig_{c.name}"')
        else:
            selects.append(f'cast(null as {c.type}) as "{c.name}"')
            selects.append(f'cast(null as varchar) as "_orig_{c.name}"')
    extra = (
        "to_json(struct_pack(" + ", ".join(f'"{e}" := "{e}"' for e in extras) + "))"
        if extras
        else "cast(null as json)"
    )
    body = (
        f"select {', '.join(selects)}, {extra} as _extra, "
        f"{_sql_str(extract.origin)} as _file, _row from _src"
    )
    try:
        if first:
            con.execute(f"create or replace temp table {staging} as {body}")
        else:
            con.execute(f"insert into {staging} {body}")
    except duckdb.Error as exc:
        raise _FileProblem(
            f"cannot be read as {extract.file_format}: {_duckdb_reason(exc)}"
        ) from exc
    row = con.execute(
        f"select count(*) from {staging} where _file = ?", [extract.origin]
    ).fetchone()
    return int(row[0]) if row else 0


def _rules(table: Table, staging: str, staged: set[str]) -> list[tuple[str | None, str]]:
    """(column, SQL selecting _file, _row, value, reason) for every row-level check."""
    rules: list[tuple[str | None, str]] = []

    def add(column: Column, where: str, reason: str) -> None:
        rules.append(
            (
                column.name,
                f'select _file, _row, "_orig_{column.name}" as value, {reason} as reason '
                f"from {staging} where {where}",
            )
        )

    for c in table.columns:
        q, orig = f'"{c.name}"', f'"_orig_{c.name}"'
        add(c, f"{orig} is not null and {q} is null", _sql_str(f"is not a valid {c.type}"))
        if c.required:
            add(c, f"{orig} is null", _sql_str("is empty; a value is required"))
        if c.min_value is not None:
            add(c, f"{q} < {c.min_value}", _sql_str(f"is below the minimum {c.min_value:g}"))
        if c.max_value is not None:
            add(c, f"{q} > {c.max_value}", _sql_str(f"is above the maximum {c.max_value:g}"))
        if c.is_currency:
            add(
                c,
                f"{q} is not null and {q} not in (select code from _currencies)",
                _sql_str("is not an ISO 4217 currency code"),
            )
        if c.currency_column:
            cur = f'"{c.currency_column}"'
            decimals = f"length(regexp_extract({orig}, '\\.(\\d*[1-9])0*$', 1))"
            add(
                c,
                f"{q} is not null and {decimals} > "
                f"(select minor_units from _currencies where code = {cur})",
                f"'has more decimals than its currency ' || {cur} || ' allows ('"
                f" || (select minor_units from _currencies where code = {cur}) || ')'",
            )
        if c.references:
            src, tbl, col = c.references.split(".")
            parent = TABLES_BY_KEY[f"{src}.{tbl}"]
            sources = [f'select "{col}" as k from raw.{parent.raw_relation}']
            if parent.raw_relation in staged:
                sources.append(f'select "{col}" from _stage_{parent.raw_relation}')
            add(
                c,
                f"{q} is not null and {q} not in ({' union '.join(sources)})",
                _sql_str(f"has no matching {c.references} (loaded now or earlier)"),
            )
    key = [f'"{k}"' for k in table.primary_key]
    if table.updated_at:
        key.append(f'"{table.updated_at}"')
    rules.append(
        (
            ", ".join(table.primary_key),
            f"select _file, _row, concat_ws(', ', {', '.join(key)}) as value, "
            f"'repeats a primary key already in row ' || first_row || ' of this load' as reason "
            f"from (select *, row_number() over w as n, first(_row) over w as first_row "
            f"from {staging} window w as (partition by {', '.join(key)} order by _file, _row)) "
            f"where n > 1",
        )
    )
    return rules


def check_staged(
    con: duckdb.DuckDBPyConnection, table: Table, staging: str, staged: set[str]
) -> list[Violation]:
    violations = []
    for column, sql in _rules(table, staging, staged):
        for file, row, value, reason in con.execute(sql).fetchall():
            violations.append(
                Violation(f"{table.source}.{table.name}", file, int(row), column, value, reason)
            )
    return violations


# --- the load --------------------------------------------------------------------------------


def _register_currencies(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create or replace temp table _currencies (code varchar, minor_units integer)")
    con.executemany("insert into _currencies values (?, ?)", list(MINOR_UNITS.items()))


def _summary(violations: list[Violation]) -> str:
    counts = Counter((v.table, v.column or "(file)", v.reason.split(" (")[0]) for v in violations)
    lines = [f"{len(violations)} problem(s) in the extracts; nothing of this load was kept:"]
    lines += [f"  {n} x {t} {c}: {r}" for (t, c, r), n in counts.most_common(10)]
    lines.append("first problems:")
    lines += [f"  - {v.describe()}" for v in violations[:MAX_LISTED]]
    return "\n".join(lines)


def _record_quarantine(
    con: duckdb.DuckDBPyConnection, run_id: str, violations: list[Violation], disposition: str
) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    con.executemany(
        "insert into raw._quarantine values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (run_id, v.table, v.source_file, v.row, v.column, v.value, v.reason, disposition, now)
            for v in violations
        ],
    )


def load_sources(
    config: SourcesConfig,
    warehouse: Path,
    run_id: str | None = None,
    *,
    full_refresh: bool = False,
    memory_limit: str = "8GB",
    staging_dir: Path | None = None,
) -> LoadReport:
    """Load every new extract of every source into raw: all of it, or (on failure) none."""
    run_id = run_id or uuid.uuid4().hex
    report = LoadReport(run_id=run_id)
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    staging_dir = staging_dir or warehouse.parent / "extracts"
    loaded_at = datetime.now(UTC).replace(tzinfo=None)
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"set memory_limit = '{memory_limit}'")
        ensure_raw_schema(con)
        ledger = LedgerView(con, ignore=full_refresh)
        extracts: dict[str, list[Extract]] = {}
        for name, spec in config.sources.items():
            connector = build_connector(name, spec, staging_dir, run_id)
            fs = getattr(connector, "fs", None)
            if fs is not None and not getattr(connector, "is_local", True):
                protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
                if protocol not in con.list_filesystems():
                    con.register_filesystem(fs)
            for t in TABLES:
                if t.source == name:
                    extracts[t.raw_relation] = connector.extracts(t, ledger)
        report.skipped_files = ledger.skipped
        _register_currencies(con)
        _load(con, config.bad_rows, extracts, report, run_id, loaded_at, full_refresh)
    finally:
        con.close()
    return report


def _load(
    con: duckdb.DuckDBPyConnection,
    policy: BadRows,
    extracts: dict[str, list[Extract]],
    report: LoadReport,
    run_id: str,
    loaded_at: datetime,
    full_refresh: bool,
) -> None:
    rejected: list[Violation] = []
    con.execute("begin transaction")
    try:
        if full_refresh:
            for t in TABLES:
                con.execute(f"delete from raw.{t.raw_relation}")
            con.execute("delete from raw._load_ledger")
        for t in TABLES:
            if t.optional or extracts.get(t.raw_relation):
                continue
            n = con.execute(f"select count(*) from raw.{t.raw_relation}").fetchone()
            if not n or n[0] == 0:
                raise ExtractError(
                    f"required table {t.source}.{t.name} has no rows and no extract arrived for "
                    "it: see config/sources.yml and docs/extract-contract.md"
                )
        staged: set[str] = set()
        for t in TABLES:
            files = extracts.get(t.raw_relation, [])
            if not files:
                continue
            key = f"{t.source}.{t.name}"
            mode = policy.policy(t)
            staging = f"_stage_{t.raw_relation}"
            rows_by_file: dict[str, int] = {}
            bad_files: dict[str, str] = {}
            for extract in files:
                try:
                    rows_by_file[extract.origin] = stage_extract(
                        con, extract, staging, first=staging not in staged
                    )
                    staged.add(staging)
                except _FileProblem as exc:
                    bad_files[extract.origin] = str(exc)
                    violation = Violation(key, extract.origin, None, None, None, str(exc))
                    (report.quarantined if mode == "quarantine" else rejected).append(violation)
            violations = (
                check_staged(con, t, staging, {s.removeprefix("_stage_") for s in staged})
                if staging in staged
                else []
            )
            if mode == "quarantine" and violations:
                con.execute("create or replace temp table _bad (_file varchar, _row bigint)")
                con.executemany(
                    "insert into _bad values (?, ?)", [(v.source_file, v.row) for v in violations]
                )
                con.execute(
                    f"delete from {staging} where (_file, _row) in (select _file, _row from _bad)"
                )
                report.quarantined.extend(violations)
            else:
                rejected.extend(violations)
            for extract in files:
                status = "quarantined" if extract.origin in bad_files else "loaded"
                rows = rows_by_file.get(extract.origin, 0)
                quarantined = len({v.row for v in violations if v.source_file == extract.origin})
                report.loaded.append(
                    LoadedFile(
                        key,
                        extract.origin,
                        rows - quarantined if mode == "quarantine" else rows,
                        extract.fingerprint,
                        quarantined if mode == "quarantine" else 0,
                        extract.watermark,
                        status,
                    )
                )
        if rejected:
            raise ExtractError(_summary(rejected), rejected)

        for t in TABLES:
            staging = f"_stage_{t.raw_relation}"
            if staging not in staged:
                continue
            cols = ", ".join(f'"{c.name}"' for c in t.columns)
            con.execute(
                f"insert into raw.{t.raw_relation} ({cols}, _source_file, _loaded_at, _run_id, _extra) "
                f"select {cols}, _file, ?, ?, _extra from {staging}",
                [loaded_at, run_id],
            )
        for f in report.loaded:
            con.execute(
                "insert into raw._load_ledger (run_id, table_name, file_path, sha256, row_count, "
                "loaded_at, watermark, status, quarantined_rows) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    f.table,
                    f.path,
                    f.sha256,
                    f.rows,
                    loaded_at,
                    f.watermark,
                    f.status,
                    f.quarantined_rows,
                ],
            )
            log.info("loaded %s rows of %s from %s", f.rows, f.table, f.path)
        if report.quarantined:
            _record_quarantine(con, run_id, report.quarantined, "quarantined")
            log.warning(
                "quarantined %s bad row(s) or file(s): %s",
                len(report.quarantined),
                report.quarantined_by_table,
            )
        for t in TABLES:
            n = con.execute(f"select count(*) from raw.{t.raw_relation}").fetchone()
            report.raw_rows[f"{t.source}.{t.name}"] = int(n[0]) if n else 0
            if not t.optional and report.raw_rows[f"{t.source}.{t.name}"] == 0:
                raise ExtractError(
                    f"required table {t.source}.{t.name} has no rows: expected extracts for it "
                    "from its source (see config/sources.yml and docs/extract-contract.md)"
                )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        if rejected:
            # What was wrong stays on record for people, outside the rolled-back load.
            _record_quarantine(con, run_id, rejected, "rejected")
        raise


def load_landing(
    landing_dir: Path,
    warehouse: Path,
    run_id: str | None = None,
    *,
    full_refresh: bool = False,
    memory_limit: str = "8GB",
    bad_rows: BadRows | None = None,
) -> LoadReport:
    """Load every source from files under one landing directory (the default layout)."""
    if not landing_dir.is_dir():
        raise ExtractError(f"landing zone {landing_dir} does not exist")
    config = files_config(landing_dir)
    if bad_rows is not None:
        config = config.model_copy(update={"bad_rows": bad_rows})
    return load_sources(
        config, warehouse, run_id, full_refresh=full_refresh, memory_limit=memory_limit
    )


def unload_run(warehouse: Path, run_id: str) -> int:
    """Take back everything one run loaded (used when the raw gate rejects it).

    The files stay where they are and are not in the ledger any more, so the next run tries
    them again: nothing is lost, and nothing unchecked reaches the marts.
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
