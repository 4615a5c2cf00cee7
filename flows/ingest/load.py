"""Load extracts into the private warehouse's `raw` schema, checked against the contract.

Connectors (`flows/ingest/connectors/`) say what is new for each contract table; this module reads
each extract with DuckDB, checks it against `flows/ingest/contract.py` and appends it to
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
import gzip
import hashlib
import io
import logging
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import fsspec

from flows.errors import ExtractError
from flows.faults import crash_point
from flows.ingest.connectors import Extract
from flows.ingest.contract import (
    DATE_PATTERN,
    MAX_TEXT_LENGTH,
    TABLES,
    TABLES_BY_KEY,
    TIMESTAMP_PATTERN,
    Column,
    Table,
)
from flows.ingest.currencies import MINOR_UNITS
from flows.ingest.sources import BadRows, SourcesConfig, build_connector, files_config

log = logging.getLogger(__name__)

LINEAGE = {
    "_source_file": "VARCHAR",
    "_loaded_at": "TIMESTAMP",
    "_run_id": "VARCHAR",
    "_extra": "JSON",
}
MAX_LISTED = 20  # violations spelled out in an error message; all are in raw._quarantine
MAX_SHOWN = 120  # characters of a value shown in a message or kept in raw._quarantine
# Longest CSV line read (DuckDB's default is 2 MB): long enough that an oversized text value
# is reported by the column rules, naming its column, rather than as an unreadable line.
MAX_LINE_BYTES = 32 << 20


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


@dataclass
class LoadedFile:
    table: str
    path: str
    rows: int
    sha256: str
    quarantined_rows: int = 0
    watermark: str | None = None
    status: str = "loaded"  # loaded | quarantined (the whole file)


@dataclass(frozen=True)
class DuplicateFile:
    """A new file with the same content (SHA-256) as one loaded before or earlier in this run."""

    path: str
    same_as: str


@dataclass
class LoadReport:
    run_id: str
    loaded: list[LoadedFile] = field(default_factory=list)
    skipped_files: int = 0
    duplicates: list[DuplicateFile] = field(default_factory=list)
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


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


class LedgerView:
    """What the ledger already holds, as connectors need it.

    A file whose content (SHA-256) was loaded before is skipped; so is a second file with the
    same content as one seen earlier in this run, so a copy under a new name never loads twice.
    Copies under another name are listed in `duplicates` and logged.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, *, ignore: bool) -> None:
        self.skipped = 0
        self.duplicates: list[DuplicateFile] = []
        if ignore:
            self._seen: dict[str, str] = {}
            self._watermarks: dict[str, str] = {}
            return
        self._seen = dict(
            con.execute(
                "select sha256, arg_min(file_path, loaded_at) from raw._load_ledger group by 1"
            ).fetchall()
        )
        # The watermark of each table's latest load (watermarks only grow; comparing them as
        # text would put "9" after "10").
        self._watermarks = dict(
            con.execute(
                "select table_name, arg_max(watermark, loaded_at) from raw._load_ledger "
                "where watermark is not null group by 1"
            ).fetchall()
        )

    def seen(self, fingerprint: str, origin: str | None = None) -> bool:
        earlier = self._seen.get(fingerprint)
        if earlier is not None:
            self.skipped += 1
            # another name: a copy (the same name under a moved landing zone is no news)
            if origin is not None and _name(earlier) != _name(origin):
                self.duplicates.append(DuplicateFile(origin, earlier))
                log.warning(
                    "not loading %s: it has the same content (sha256 %s) as %s",
                    origin,
                    fingerprint[:12],
                    earlier,
                )
            return True
        if origin is not None:
            self._seen[fingerprint] = origin  # a copy later in this run is a duplicate
        return False

    def last_watermark(self, table: Table) -> str | None:
        return self._watermarks.get(f"{table.source}.{table.name}")


# --- reading and checking one extract --------------------------------------------------------


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    """A column name as a quoted SQL identifier, whatever characters the file gave it."""
    return '"' + name.replace('"', '""') + '"'


def _clip(value: str | None, limit: int = MAX_SHOWN) -> str | None:
    """A value short enough to show: a 10 MB cell must not become a 10 MB error message."""
    if value is None or len(value) <= limit:
        return value
    return f"{value[:limit]}... ({len(value)} characters)"


class _FileProblem(Exception):
    """A whole file cannot be used; `rows` are (row, column, value, reason) where known."""

    def __init__(
        self,
        message: str,
        rows: list[tuple[int | None, str | None, str | None, str]] | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message)
        self.rows = rows or []
        self.column = column


def _csv_header(extract: Extract) -> list[str]:
    """Column names from the first line (BOM stripped), read the way a person would."""
    try:
        with fsspec.open(extract.uri, "rb", compression="infer") as fh:
            first = fh.readline()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise _FileProblem(f"cannot be decompressed: {exc}") from None
    if not first.strip():
        raise _FileProblem("the file is empty: expected a header line with the column names")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        utf16 = first.startswith((b"\xff\xfe", b"\xfe\xff"))
        raise _FileProblem(
            "the header line is not UTF-8"
            + (" (it is UTF-16, as Excel's 'Unicode text' writes)" if utf16 else "")
            + ": files must be UTF-8 encoded"
        ) from None
    names = next(csv.reader(io.StringIO(text)))
    names = [n.strip() for n in names]
    unnamed = [str(i) for i, n in enumerate(names, 1) if not n]
    if unnamed:
        raise _FileProblem(
            f"the header has no name for column(s) {', '.join(unnamed)} (position in the "
            "header line; a trailing comma makes one): every column must be named"
        )
    dupes = sorted(n for n, k in Counter(n.lower() for n in names).items() if k > 1)
    if dupes:
        raise _FileProblem(f"the header repeats column(s) {', '.join(dupes)} (ignoring case)")
    return names


def _csv_reader(uri: str, names: list[str], *extra: str) -> str:
    columns = "{" + ", ".join(f"{_sql_str(n)}: 'VARCHAR'" for n in names) + "}"
    options = ", ".join(
        [
            "header=true",
            "auto_detect=false",
            f"columns={columns}",
            "delim=','",
            "quote='\"'",
            "escape='\"'",
            "strict_mode=true",
            "null_padding=false",
            f"max_line_size={MAX_LINE_BYTES}",
            *extra,
        ]
    )
    return f"read_csv({_sql_str(uri)}, {options})"


def _reader(extract: Extract) -> tuple[str, list[str] | None]:
    uri = _sql_str(extract.uri)
    if extract.file_format == "csv":
        names = _csv_header(extract)
        return _csv_reader(extract.uri, names), names
    if extract.file_format == "parquet":
        return f"read_parquet({uri})", None
    return f"read_json({uri}, format='newline_delimited')", None


def _csv_rejects(
    con: duckdb.DuckDBPyConnection, extract: Extract, names: list[str]
) -> list[tuple[int | None, str | None, str | None, str]]:
    """Every line DuckDB's CSV reader rejects (its `store_rejects`), as (row, column, ...)."""
    try:
        con.execute("drop table if exists _rejects")
        con.execute("drop table if exists _reject_scans")
        reader = _csv_reader(
            extract.uri,
            names,
            "store_rejects=true",
            "rejects_table='_rejects'",
            "rejects_scan='_reject_scans'",
        )
        # every column read (a count(*) would skip the columns, and their encoding errors)
        con.execute(f"create or replace temp table _reject_probe as select * from {reader}")
        con.execute("drop table _reject_probe")
        # one problem per line: its first column (a short line is reported once per column
        # it lacks)
        found = con.execute(
            "select line, arg_min(column_name, column_idx), arg_min(csv_line, column_idx), "
            "arg_min(error_type, column_idx), arg_min(error_message, column_idx) "
            "from _rejects group by line order by line"
        ).fetchall()
    except duckdb.Error:
        return []
    return [
        (
            int(line) - 1 if line is not None else None,  # line 1 is the header
            column,
            _clip(csv_line),
            f"{str(kind).lower()}: {message} (line {line} of the file; "
            "a file that does not parse is not loaded at all)",
        )
        for line, column, csv_line, kind, message in found
    ]


def _header_mismatch(
    con: duckdb.DuckDBPyConnection,
    extract: Extract,
    table: Table,
    missing: list[str],
    present: list[str],
) -> str:
    found = ", ".join(repr(p) for p in present) or "none"
    message = (
        f"the header does not match the contract: missing required column(s) "
        f"{', '.join(missing)}; found column(s) {found}"
    )
    if extract.file_format == "csv":
        try:
            sniffed = con.execute(
                f"select Delimiter from sniff_csv({_sql_str(extract.uri)})"
            ).fetchone()
        except duckdb.Error:
            sniffed = None
        if sniffed and sniffed[0] and sniffed[0] != ",":
            message += (
                f"; the file looks delimited by {sniffed[0]!r}, the expected delimiter is ','"
            )
        elif len(present) == 1:
            message += "; the expected delimiter is ','"
    return message + f"; expected columns: {', '.join(c.name for c in table.columns)}"


def content_sha256(uri: str) -> str:
    digest = hashlib.sha256()
    with fsspec.open(uri, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_EXPECTED = {
    "TIMESTAMP": "expected ISO 8601 such as 2024-03-01T12:00:00Z or 2024-03-01T14:00:00+02:00",
    "DATE": "expected a date YYYY-MM-DD",
    "INTEGER": "expected a whole number from -2147483648 to 2147483647",
    "BIGINT": "expected a whole number of at most 18 digits",
    "DOUBLE": "expected a number",
    "BOOLEAN": "expected true or false",
    "VARCHAR": "expected text",
}


def _expected(type_: str) -> str:
    if type_.startswith("DECIMAL("):
        precision, scale = (int(x) for x in type_[8:-1].split(","))
        return (
            f"expected a number with at most {precision - scale} digits before the decimal "
            f"point and {scale} after it"
        )
    return _EXPECTED.get(type_, f"expected a {type_}")


def _scale(type_: str) -> int | None:
    if type_.startswith("DECIMAL("):
        return int(type_[8:-1].split(",")[1])
    return None


def _typed(raw: str, type_: str, text: bool = True) -> str:
    """`raw` (the value as trimmed text) as `type_`; NULL when it does not read as one.

    `text`: the file holds the value as text (CSV, JSON strings). A value a typed file (Parquet)
    already holds as a date or timestamp needs no check of how it was written.
    """
    if not text:
        return f"try_cast({raw} as {type_})"
    if type_ == "TIMESTAMP":
        # Offsets are honoured and converted to UTC; naive values are taken as UTC. Only ISO
        # 8601 is read: DuckDB alone would also take "PST", "epoch" or an offset of +25:00.
        return (
            f"case when regexp_full_match({raw}, {_sql_str(TIMESTAMP_PATTERN)}) "
            f"then (try_cast({raw} as timestamptz) at time zone 'UTC') end"
        )
    if type_ == "DATE":
        # a timestamp with a time of day is not a date: cutting it would shift days
        return (
            f"case when regexp_full_match({raw}, {_sql_str(DATE_PATTERN)}) "
            f"then try_cast({raw} as date) end"
        )
    return f"try_cast({raw} as {type_})"


def _duckdb_reason(exc: duckdb.Error, uri: str) -> str:
    """DuckDB's message without its advice, the echo of the query and the file's full path."""
    keep = []
    for line in (ln.strip() for ln in str(exc).splitlines()):
        if line.startswith(("Possible", "file = ")):
            break  # the rest is advice and the reader's settings
        if (
            not line
            or line.startswith(("*", "Original Line", "LINE "))
            or not set(line) - {"^", " "}
        ):
            continue
        keep.append(line)
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    text = " ".join(keep).replace(f'"{uri}"', name).replace(uri, name)
    return _clip(text, 400) or type(exc).__name__


@dataclass(frozen=True)
class Opened:
    """An extract whose header (or schema) is known to fit the contract; rows not read yet."""

    reader: str  # the DuckDB table function that reads it
    types: dict[str, str]  # column -> type, as the file gives it (all VARCHAR for CSV)
    names: list[str] | None = None  # a CSV file's header


class _ReadFailed(Exception):
    """DuckDB failed while reading the rows of one extract (inside the load's transaction)."""

    def __init__(self, extract: Extract, opened: Opened, error: duckdb.Error) -> None:
        super().__init__(str(error))
        self.extract, self.opened, self.error = extract, opened, error


def open_extract(con: duckdb.DuckDBPyConnection, extract: Extract) -> Opened:
    """What can be checked without reading the rows: the file opens, the header or schema has
    the required columns. Run outside a transaction (a failed statement would abort it)."""
    names: list[str] | None = None
    try:
        reader, names = _reader(extract)
        described = con.execute(f"describe select * from {reader}").fetchall()
    except duckdb.Error as exc:
        raise _FileProblem(
            f"cannot be read as {extract.file_format}: {_duckdb_reason(exc, extract.uri)}",
            _csv_rejects(con, extract, names) if names is not None else [],
        ) from exc
    types = {str(r[0]): str(r[1]) for r in described}
    missing = [c for c in extract.table.required_columns if c not in types]
    if missing:
        raise _FileProblem(
            _header_mismatch(con, extract, extract.table, missing, list(types)),
            column=", ".join(missing),
        )
    return Opened(reader, types, names)


def read_failure(con: duckdb.DuckDBPyConnection, failed: _ReadFailed) -> _FileProblem:
    """What went wrong reading a file, with every line DuckDB rejects when it is a CSV file.
    Run outside a transaction, after the one the failure aborted was rolled back."""
    extract, opened = failed.extract, failed.opened
    return _FileProblem(
        f"cannot be read as {extract.file_format}: {_duckdb_reason(failed.error, extract.uri)}",
        _csv_rejects(con, extract, opened.names) if opened.names is not None else [],
    )


def _changed(extract: Extract, after: str) -> _FileProblem:
    return _FileProblem(
        f"the file changed while it was being read (sha256 {extract.fingerprint[:12]} "
        f"when listed, {after[:12]} after reading): nothing of it is loaded; the next "
        "run loads it once it has stopped changing"
    )


def stage_extract(
    con: duckdb.DuckDBPyConnection,
    extract: Extract,
    opened: Opened,
    staging: str,
    first: bool,
    source_types: dict[tuple[str, str], str] | None = None,
) -> int:
    """Append one extract to the temp table `staging` (typed + original values + _file/_row).

    Raises _ReadFailed when DuckDB cannot read the rows, _FileProblem when the file changed
    while it was read. `source_types` receives (file, column) -> the type a typed file
    (Parquet, JSON) gives a contract text column when it is not text, for the reference
    checks' messages.
    """
    table, types = extract.table, opened.types
    row_col = "_row"
    while row_col in types:  # a file may have a column of that name
        row_col = f"_{row_col}"
    known = {c.name for c in table.columns}
    extras = [c for c in types if c not in known]
    selects = []
    for c in table.columns:
        if c.name in types:
            raw = f"nullif(trim(cast({_ident(c.name)} as varchar)), '')"
            text = types[c.name] in {"VARCHAR", "JSON"}
            selects.append(f"{_typed(raw, c.type, text)} as {_ident(c.name)}")
            selects.append(f"{raw} as {_ident('_orig_' + c.name)}")
            if source_types is not None and c.type == "VARCHAR" and not text:
                source_types[(extract.origin, c.name)] = types[c.name]
        else:
            selects.append(f"cast(null as {c.type}) as {_ident(c.name)}")
            selects.append(f"cast(null as varchar) as {_ident('_orig_' + c.name)}")
    extra = (
        "to_json(struct_pack(" + ", ".join(f"{_ident(e)} := {_ident(e)}" for e in extras) + "))"
        if extras
        else "cast(null as json)"
    )
    body = (
        f"select {', '.join(selects)}, {extra} as _extra, "
        f"{_sql_str(extract.origin)} as _file, {row_col} as _row from _src"
    )
    try:
        con.execute(
            f"create or replace temp view _src as "
            f"select *, row_number() over () as {row_col} from {opened.reader}"
        )
        if first:
            counted = con.execute(f"create or replace temp table {staging} as {body}").fetchone()
        else:
            counted = con.execute(f"insert into {staging} {body}").fetchone()
    except duckdb.Error as exc:
        raise _ReadFailed(extract, opened, exc) from exc
    after = content_sha256(extract.uri)
    if after != extract.fingerprint:
        con.execute(f"delete from {staging} where _file = ?", [extract.origin])
        raise _changed(extract, after)
    n = int(counted[0]) if counted else 0
    if n == 0:
        log.warning("%s has no rows (only a header, or nothing): nothing to load", extract.origin)
    return n


def _lit(value: float) -> str:
    return repr(float(value))


def _row_checks(
    table: Table, orig: dict[str, str], derived: frozenset[str] = frozenset()
) -> list[tuple[str, str, str]]:
    """(column, condition, reason SQL) of every check of one row's own values.

    `orig`: column -> SQL of the value as the file wrote it (trimmed text, NULL when empty).
    `derived`: columns whose file type is the contract's type (a Parquet DATE or DOUBLE) or
    that the file lacks: their text is the typed value cast back, so they cannot fail to
    parse, are empty exactly when NULL and cannot hold more decimals than their type.
    """
    checks: list[tuple[str, str, str]] = []

    def add(column: Column, where: str, reason: str) -> None:
        checks.append((column.name, where, reason))

    for c in table.columns:
        q, o = _ident(c.name), orig[c.name]
        if c.name not in derived:
            add(
                c,
                f"{o} is not null and {q} is null",
                _sql_str(f"is not a valid {c.type} ({_expected(c.type)})"),
            )
        if c.required:
            add(
                c,
                f"{q} is null" if c.name in derived else f"{o} is null",
                _sql_str("is empty; a value is required"),
            )
        finite = ""
        if c.type == "DOUBLE":
            add(
                c,
                f"{q} is not null and not isfinite({q})",
                _sql_str("is not a finite number (NaN and infinity are not allowed)"),
            )
            finite = f" and isfinite({q})"
        if c.min_value is not None:
            add(
                c,
                f"{q} < {_lit(c.min_value)}{finite}",
                _sql_str(f"is below the minimum {c.min_value:g}"),
            )
        if c.max_value is not None:
            add(
                c,
                f"{q} > {_lit(c.max_value)}{finite}",
                _sql_str(f"is above the maximum {c.max_value:g}"),
            )
        if c.type == "VARCHAR":
            add(
                c,
                f"length({o}) > {MAX_TEXT_LENGTH}",
                f"'is ' || length({o}) || ' characters long; a text value may have at most "
                f"{MAX_TEXT_LENGTH} characters'",
            )
        decimals = f"length(regexp_extract({o}, '\\.(\\d*[1-9])0*$', 1))"
        scale = _scale(c.type)
        if scale is not None and c.name not in derived:
            add(
                c,
                f"{q} is not null and {decimals} > {scale}",
                _sql_str(f"has more than {scale} decimals, which {c.type} cannot hold"),
            )
        if c.is_currency:
            add(
                c,
                f"{q} is not null and {q} not in (select code from _currencies)",
                _sql_str("is not an ISO 4217 currency code"),
            )
        if c.currency_column:
            cur = _ident(c.currency_column)
            add(
                c,
                f"{q} is not null and {decimals} > "
                f"(select minor_units from _currencies where code = {cur})",
                f"'has more decimals than its currency ' || {cur} || ' allows ('"
                f" || (select minor_units from _currencies where code = {cur}) || ')'",
            )
        if c.not_before:
            other, other_orig = _ident(c.not_before), orig[c.not_before]
            add(
                c,
                f"{q} < {other}",
                f"'is before {c.not_before} (' || {other_orig} || ') of the same row'",
            )
    return checks


def _rules(
    table: Table, staging: str, staged: set[str], earlier: bool = True
) -> list[tuple[str | None, str]]:
    """(column, SQL selecting _file, _row, value, reason[, column]) for the row-level checks.

    The checks of one row's own values run in one scan of the staging table (a few million
    usage rows are read once, not once per check); the SQL of that one returns the column as a
    fifth field. Keys and references are queries of their own.

    `earlier`: rows loaded by earlier runs count (references resolve to them, uniqueness holds
    against them); not so in a full refresh, which replaces them.
    """
    rules: list[tuple[str | None, str]] = []
    checks = _row_checks(table, {c.name: _ident("_orig_" + c.name) for c in table.columns})
    for c in table.columns:
        q, orig = _ident(c.name), _ident("_orig_" + c.name)
        if c.references:
            src, tbl, col = c.references.split(".")
            parent = TABLES_BY_KEY[f"{src}.{tbl}"]
            sources = [f"select {_ident(col)} as k from raw.{parent.raw_relation}"][: int(earlier)]
            if parent.raw_relation in staged:
                sources.append(f"select {_ident(col)} as k from _stage_{parent.raw_relation}")
            sources = sources or ["select null as k where false"]
            rules.append(
                (
                    c.name,
                    f"select _file, _row, {orig} as value, "
                    f"{_sql_str(f'has no matching {c.references} (loaded now or earlier)')} "
                    f"as reason from {staging} where {q} is not null and not exists "
                    f"(select 1 from ({' union all '.join(sources)}) p where p.k = {q})",
                )
            )
    if checks:
        hits = ", ".join(
            f"case when {where} then struct_pack(c := {_sql_str(column)}, "
            f"v := {_ident('_orig_' + column)}, r := {reason}) end"
            for column, where, reason in checks
        )
        rules.insert(
            0,
            (
                None,
                f"select _file, _row, h.v, h.r, h.c from (select _file, _row, "
                f"unnest([{hits}]) as h from {staging} "
                f"where {' or '.join(f'({where})' for _, where, _ in checks)}) "
                "where h is not null order by _file, _row",
            ),
        )
    key = [_ident(k) for k in table.primary_key]
    if table.updated_at:
        key.append(_ident(table.updated_at))
    rules.append(
        (
            ", ".join(table.primary_key),
            # only the keys that repeat go through the window (it is the slow part)
            f"select _file, _row, concat_ws(', ', {', '.join(key)}) as value, "
            f"'repeats a primary key already in row ' || first_row || ' of ' || first_file "
            f"|| ' in this load' as reason "
            f"from (select s.*, row_number() over w as n, first(_row) over w as first_row, "
            f"first(_file) over w as first_file from {staging} s semi join "
            f"(select {', '.join(key)} from {staging} group by all having count(*) > 1) "
            f"using ({', '.join(key)}) "
            f"window w as (partition by {', '.join(key)} order by _file, _row)) where n > 1",
        )
    )
    for u in table.unique:
        cols = [_ident(x) for x in u.columns]
        pk = [_ident(k) for k in table.primary_key]
        pk_text = ", ".join(table.primary_key)
        same = " and ".join(f"s.{x} = o.{x}" for x in cols)
        other_key = " and ".join(f"s.{k} = o.{k}" for k in pk)
        rules.append(
            (
                ", ".join(u.columns),
                f"select s._file, s._row, concat_ws(', ', {', '.join('s.' + x for x in cols)}) "
                f"as value, {_sql_str(u.reason + ': ' + pk_text + ' ')} || "
                f"concat_ws(', ', {', '.join('o.' + k for k in pk)}) || ' has the same "
                f"{', '.join(u.columns)} (' || o._f || coalesce(', row ' || o._r, ', loaded "
                f"earlier') || ')' as reason "
                f"from {staging} s join ("
                f"select {', '.join(pk + cols)}, _file as _f, _row as _r from {staging} "
                f"union all select {', '.join(pk + cols)}, _source_file, null "
                f"from raw.{table.raw_relation} where {str(earlier).lower()}"
                f") o on {same} and not ({other_key})",
            )
        )
    return rules


def _reference_hints(
    con: duckdb.DuckDBPyConnection,
    violations: list[Violation],
    staged: set[str],
    source_types: dict[tuple[str, str], str],
) -> list[Violation]:
    """Say why an unmatched id may not match: the id of another table, or stored as a number."""
    values = sorted(
        {v.value for v in violations if v.reason.startswith("has no matching ") and v.value}
    )
    if not values:
        return violations
    found: dict[str, list[str]] = {}
    for t in TABLES:
        if len(t.primary_key) != 1:
            continue
        k = _ident(t.primary_key[0])
        parts = [f"select {k} as k from raw.{t.raw_relation}"]
        if t.raw_relation in staged:
            parts.append(f"select {k} from _stage_{t.raw_relation}")
        rows = con.execute(
            f"select distinct k from ({' union all '.join(parts)}) where k in "
            "(select unnest(?::varchar[]))",
            [values],
        ).fetchall()
        for (value,) in rows:
            found.setdefault(value, []).append(f"{t.source}.{t.name}.{t.primary_key[0]}")
    out = []
    for v in violations:
        if v.reason.startswith("has no matching "):
            hints = [
                f"it is a {where}"
                for where in found.get(v.value or "", [])
                if not v.reason.startswith(f"has no matching {where} ")
            ]
            stored = source_types.get((v.source_file, v.column or ""))
            if stored:
                hints.append(
                    f"the file stores {v.column} as {stored}, but ids are text and must match "
                    "exactly, leading zeros included"
                )
            if hints:
                v = Violation(
                    v.table,
                    v.source_file,
                    v.row,
                    v.column,
                    v.value,
                    f"{v.reason}; {'; '.join(hints)}",
                )
        out.append(v)
    return out


def check_staged(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    staging: str,
    staged: set[str],
    source_types: dict[tuple[str, str], str] | None = None,
    *,
    earlier: bool = True,
) -> list[Violation]:
    violations = []
    for column, sql in _rules(table, staging, staged, earlier):
        for file, row, value, reason, *named in con.execute(sql).fetchall():
            violations.append(
                Violation(
                    f"{table.source}.{table.name}",
                    file,
                    int(row),
                    named[0] if named else column,
                    _clip(value),
                    reason,
                )
            )
    return _reference_hints(con, violations, staged, source_types or {})


# --- the load --------------------------------------------------------------------------------


def _register_currencies(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create or replace temp table _currencies (code varchar, minor_units integer)")
    con.execute(
        "insert into _currencies select unnest(?::varchar[]), unnest(?::integer[])",
        [list(MINOR_UNITS), list(MINOR_UNITS.values())],
    )


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
        # appends need not keep the files' row order (row numbers come from the precise path,
        # which turns it back on): big inserts run in parallel and hold less in memory
        con.execute("set preserve_insertion_order = false")
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
        report.duplicates = ledger.duplicates
        _register_currencies(con)
        _load(con, config.bad_rows, extracts, report, run_id, loaded_at, full_refresh)
    finally:
        con.close()
    return report


@dataclass
class _Staged:
    """What one attempt at staging and checking every extract found."""

    staged: set[str] = field(default_factory=set)
    loaded: list[LoadedFile] = field(default_factory=list)
    quarantined: list[Violation] = field(default_factory=list)
    rejected: list[Violation] = field(default_factory=list)


def _problems(key: str, extract: Extract, exc: _FileProblem) -> list[Violation]:
    return [
        Violation(key, extract.origin, row, column, value, reason)
        for row, column, value, reason in exc.rows
    ] or [Violation(key, extract.origin, None, exc.column, None, str(exc))]


def _fast_select(table: Table, types: dict[str, str]) -> tuple[str, dict[str, str], frozenset[str]]:
    """The typed columns of one file (plus the text of those read from text), its `_extra`.

    Returns the select list, column -> SQL of the value as written (for `_row_checks`) and the
    columns whose text is derived from the typed value (`_row_checks`' `derived`). A column the
    file holds in the contract's own type (Parquet usage: DATE, DOUBLE) is taken as it is, with
    no round trip through text; the values are the same as `stage_extract`'s.
    """
    known = {c.name for c in table.columns}
    extras = [c for c in types if c not in known]
    selects: list[str] = []
    orig: dict[str, str] = {}
    derived: set[str] = set()
    for c in table.columns:
        q = _ident(c.name)
        if c.name not in types:
            selects.append(f"cast(null as {c.type}) as {q}")
            orig[c.name] = "cast(null as varchar)"
            derived.add(c.name)
        elif c.type == "VARCHAR":  # the typed value is the trimmed text itself
            text = q if types[c.name] == "VARCHAR" else f"cast({q} as varchar)"
            selects.append(f"nullif(trim({text}), '') as {q}")
            orig[c.name] = q
        elif types[c.name] == c.type:
            selects.append(q)
            orig[c.name] = f"cast({q} as varchar)"
            derived.add(c.name)
        else:
            raw = f"nullif(trim(cast({q} as varchar)), '')"
            text_file = types[c.name] in {"VARCHAR", "JSON"}
            selects.append(f"{_typed(raw, c.type, text_file)} as {q}")
            selects.append(f"{raw} as {_ident('_orig_' + c.name)}")
            orig[c.name] = _ident("_orig_" + c.name)
    extra = (
        "to_json(struct_pack(" + ", ".join(f"{_ident(e)} := {_ident(e)}" for e in extras) + "))"
        if extras
        else "cast(null as json)"
    )
    selects.append(f"{extra} as _extra")
    return ", ".join(selects), orig, frozenset(derived)


def _dup_key(table: Table) -> list[str]:
    """The columns no two rows of one load may share (a key and its version)."""
    return [*table.primary_key, *([table.updated_at] if table.updated_at else [])]


def _overlapping(ranges: dict[str, list[tuple[object, object]]]) -> list[list[str]]:
    """Groups of two or more files that may share a key: their (min, max) overlap on every key
    column. Monthly usage files never overlap (their usage_date ranges do not), so their keys
    are checked file by file and never against the whole table."""
    files = list(ranges)
    group = {f: f for f in files}

    def root(f: str) -> str:
        while group[f] != f:
            group[f] = group[group[f]]
            f = group[f]
        return f

    for i, a in enumerate(files):
        for b in files[i + 1 :]:
            if all(
                lo_a is not None
                and lo_b is not None
                and lo_a <= hi_b  # type: ignore[operator]
                and lo_b <= hi_a  # type: ignore[operator]
                for (lo_a, hi_a), (lo_b, hi_b) in zip(ranges[a], ranges[b], strict=True)
            ):
                group[root(a)] = root(b)
    out: dict[str, list[str]] = {}
    for f in files:
        out.setdefault(root(f), []).append(f)
    return [g for g in out.values() if len(g) > 1]


def _fast_table(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    files: list[Extract],
    opened: dict[str, Opened],
    bad: dict[str, _FileProblem],
    run_id: str,
    loaded_at: datetime,
) -> dict[str, int] | None:
    """Check every readable file of `table` and append it to raw: each file read with its types,
    all checks of its rows counted in one aggregate, no text copy of it kept.

    Returns the rows per file, or None when any row, key or reference breaks the contract: then
    nothing of the table is left in raw and `_precise_table` names every problem. A file that
    changed while it was read goes to `bad`. Parents are loaded before their children, so the
    references resolve against raw alone (which a full refresh emptied first).
    """
    rel = f"raw.{table.raw_relation}"
    cols = ", ".join(_ident(c.name) for c in table.columns)
    key = [_ident(k) for k in _dup_key(table)]
    mine = "_run_id = ? and _loaded_at = ?"
    rows: dict[str, int] = {}
    ranges: dict[str, list[tuple[object, object]]] = {}
    broken = False
    for extract in files:
        if extract.origin in bad:
            continue
        op = opened[extract.origin]
        select, orig, derived = _fast_select(table, op.types)
        checks = _row_checks(table, orig, derived)
        counts = [f"count(*) filter (where {' or '.join(f'({w})' for _, w, _ in checks)})"]
        for c in table.columns:
            if c.references:
                src, tbl, col = c.references.split(".")
                parent = f"raw.{TABLES_BY_KEY[f'{src}.{tbl}'].raw_relation}"
                q = _ident(c.name)
                counts.append(
                    f"count(*) filter (where s.{q} is not null and not exists "
                    f"(select 1 from {parent} p where p.{_ident(col)} = s.{q}))"
                )
        try:
            if extract.file_format == "parquet":
                # a typed file is read again by each query: cheaper than copying its rows
                source = f"(select {select} from {op.reader})"
            else:  # text is parsed once
                con.execute(
                    f"create or replace temp table _load_file as select {select} from {op.reader}"
                )
                source = "_load_file"
            found = con.execute(
                f"select count(*), {', '.join(counts)}, "
                + ", ".join(f"min({k}), max({k})" for k in key)
                + f" from {source} s"
            ).fetchone()
            assert found is not None
            n, problems = int(found[0]), found[1 : 1 + len(counts)]
            repeats = con.execute(
                f"select count(*) from (select {', '.join(key)} from {source} "
                "group by all having count(*) > 1)"
            ).fetchone()
            broken = any(problems) or bool(repeats and repeats[0])
            if not broken:
                con.execute(
                    f"insert into {rel} ({cols}, _source_file, _loaded_at, _run_id, _extra) "
                    f"select {cols}, ?, ?, ?, _extra from {source}",
                    [extract.origin, loaded_at, run_id],
                )
            con.execute("drop table if exists _load_file")
        except duckdb.Error as exc:
            raise _ReadFailed(extract, op, exc) from exc
        if broken:
            break
        after = content_sha256(extract.uri)
        if after != extract.fingerprint:
            con.execute(
                f"delete from {rel} where _source_file = ? and {mine}",
                [extract.origin, run_id, loaded_at],
            )
            bad[extract.origin] = _changed(extract, after)
            continue
        if n == 0:
            log.warning(
                "%s has no rows (only a header, or nothing): nothing to load", extract.origin
            )
        rows[extract.origin] = n
        values = found[1 + len(counts) :]
        ranges[extract.origin] = [(values[i], values[i + 1]) for i in range(0, len(values), 2)]
    if not broken:
        for group in _overlapping({f: r for f, r in ranges.items() if rows[f]}):
            marks = ", ".join("?" for _ in group)
            repeats = con.execute(
                f"select count(*) from (select {', '.join(key)} from {rel} where {mine} "
                f"and _source_file in ({marks}) group by all having count(*) > 1)",
                [run_id, loaded_at, *group],
            ).fetchone()
            broken = broken or bool(repeats and repeats[0])
        for u in table.unique:
            same = " and ".join(f"o.{_ident(x)} = s.{_ident(x)}" for x in u.columns)
            other = " and ".join(f"o.{_ident(k)} = s.{_ident(k)}" for k in table.primary_key)
            shared = con.execute(
                f"select count(*) from {rel} s where s._run_id = ? and s._loaded_at = ? and "
                f"exists (select 1 from {rel} o where {same} and not ({other}))",
                [run_id, loaded_at],
            ).fetchone()
            broken = broken or bool(shared and shared[0])
    if broken:
        con.execute(f"delete from {rel} where {mine}", [run_id, loaded_at])
        return None
    return rows


def _precise_table(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    files: list[Extract],
    opened: dict[str, Opened],
    bad: dict[str, _FileProblem],
    quarantine: bool,
    run_id: str,
    loaded_at: datetime,
) -> tuple[dict[str, int], list[Violation]]:
    """Stage every readable file of `table` with its original text and row numbers, name every
    problem (`check_staged`), hold back the bad rows under quarantine and append the rest to
    raw. Slower and larger than `_fast_table`: only for a table that breaks the contract."""
    staging = f"_stage_{table.raw_relation}"
    source_types: dict[tuple[str, str], str] = {}
    rows: dict[str, int] = {}
    created = False
    con.execute("set preserve_insertion_order = true")  # row_number() over () = line order
    try:
        for extract in files:
            if extract.origin in bad:
                continue
            try:
                rows[extract.origin] = stage_extract(
                    con, extract, opened[extract.origin], staging, not created, source_types
                )
                created = True
            except _FileProblem as exc:
                bad[extract.origin] = exc
    finally:
        con.execute("set preserve_insertion_order = false")
    if not created:
        return rows, []
    violations = check_staged(con, table, staging, {table.raw_relation}, source_types)
    if quarantine and violations:
        con.execute("create or replace temp table _bad (_file varchar, _row bigint)")
        con.executemany(
            "insert into _bad values (?, ?)", [(v.source_file, v.row) for v in violations]
        )
        con.execute(f"delete from {staging} where (_file, _row) in (select _file, _row from _bad)")
    cols = ", ".join(_ident(c.name) for c in table.columns)
    con.execute(
        f"insert into raw.{table.raw_relation} ({cols}, _source_file, _loaded_at, _run_id, _extra) "
        f"select {cols}, _file, ?, ?, _extra from {staging}",
        [loaded_at, run_id],
    )
    con.execute(f"drop table {staging}")
    return rows, violations


def _load_order() -> list[Table]:
    """The contract's tables, each after the tables it references (checks resolve in raw)."""
    seen: set[str] = set()
    for t in TABLES:
        for c in t.columns:
            if c.references and c.references.rsplit(".", 1)[0] not in seen:
                raise RuntimeError(
                    f"flows/ingest/contract.py: {t.source}.{t.name}.{c.name} references "
                    f"{c.references}, which is not listed before it in TABLES"
                )
        seen.add(f"{t.source}.{t.name}")
    return list(TABLES)


def _stage_and_check(
    con: duckdb.DuckDBPyConnection,
    policy: BadRows,
    extracts: dict[str, list[Extract]],
    opened: dict[str, Opened],
    bad: dict[str, _FileProblem],
    run_id: str,
    loaded_at: datetime,
) -> _Staged:
    """Check every extract that opened and append it to raw (inside the load's transaction),
    holding back the bad rows per policy. A table whose rows all keep the contract goes the
    fast way; one that breaks it is loaded again the precise way, which names every problem."""
    out = _Staged()
    for t in _load_order():
        files = extracts.get(t.raw_relation, [])
        if not files:
            continue
        key = f"{t.source}.{t.name}"
        quarantine = policy.policy(t) == "quarantine"
        violations: list[Violation] = []
        rows_by_file = _fast_table(con, t, files, opened, bad, run_id, loaded_at)
        if rows_by_file is None:
            rows_by_file, violations = _precise_table(
                con, t, files, opened, bad, quarantine, run_id, loaded_at
            )
        if rows_by_file:
            out.staged.add(t.raw_relation)
        for extract in files:
            problem = bad.get(extract.origin)
            if problem is not None:
                problems = _problems(key, extract, problem)
                (out.quarantined if quarantine else out.rejected).extend(problems)
        (out.quarantined if quarantine else out.rejected).extend(violations)
        for extract in files:
            rows = rows_by_file.get(extract.origin, 0)
            held = len({v.row for v in violations if v.source_file == extract.origin})
            out.loaded.append(
                LoadedFile(
                    key,
                    extract.origin,
                    rows - held if quarantine else rows,
                    extract.fingerprint,
                    held if quarantine else 0,
                    extract.watermark,
                    "quarantined" if extract.origin in bad else "loaded",
                )
            )
        if rows_by_file and not out.rejected:
            crash_point(f"load.raw_inserted.{t.raw_relation}")  # tests/reliability
    return out


def _load(
    con: duckdb.DuckDBPyConnection,
    policy: BadRows,
    extracts: dict[str, list[Extract]],
    report: LoadReport,
    run_id: str,
    loaded_at: datetime,
    full_refresh: bool,
) -> None:
    """Check every extract and write raw, the ledger and quarantine: all or nothing.

    Everything happens in one transaction: each table's rows go to raw as soon as they are
    checked (its children's references resolve there), and a load that breaks the contract is
    rolled back. A file DuckDB cannot read fails its statement, which aborts the transaction;
    then the transaction is rolled back, the file examined outside it (every rejected CSV
    line, with row and column) and set aside, and the load starts again without it. Headers
    and schemas are checked before, outside the transaction.
    """
    for t in TABLES:
        if t.optional or extracts.get(t.raw_relation):
            continue
        n = con.execute(f"select count(*) from raw.{t.raw_relation}").fetchone()
        if full_refresh or not n or n[0] == 0:
            raise ExtractError(
                f"required table {t.source}.{t.name} has no rows and no extract arrived for "
                "it: see config/sources.yml and docs/extract-contract.md"
            )
    opened: dict[str, Opened] = {}
    bad: dict[str, _FileProblem] = {}
    for files in extracts.values():
        for extract in files:
            try:
                opened[extract.origin] = open_extract(con, extract)
            except _FileProblem as exc:
                bad[extract.origin] = exc
    while True:
        con.execute("begin transaction")
        try:
            if full_refresh:  # replaced, inside the transaction: a failed load keeps them
                for t in TABLES:
                    con.execute(f"delete from raw.{t.raw_relation}")
                con.execute("delete from raw._load_ledger")
            result = _stage_and_check(con, policy, extracts, opened, bad, run_id, loaded_at)
        except _ReadFailed as failed:
            con.execute("rollback")
            bad[failed.extract.origin] = read_failure(con, failed)
            continue
        except BaseException:
            con.execute("rollback")
            raise
        break
    report.loaded, report.quarantined = result.loaded, result.quarantined
    if result.rejected:
        con.execute("rollback")
        # What was wrong stays on record for people; nothing of the load was written.
        _record_quarantine(con, run_id, result.rejected, "rejected")
        raise ExtractError(_summary(result.rejected), result.rejected)
    try:
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
