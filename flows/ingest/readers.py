"""Reading one extract with DuckDB, and what can be wrong with the file itself.

`open_extract` checks what can be seen without reading the rows (the file opens; its CSV
header or Parquet/JSON schema has the contract's required columns); `stage_extract` reads the
rows into a staging table for the precise checks (`flows/ingest/rules.py`). A file that cannot
be used at all is a `FileProblem` (every line DuckDB's CSV reader rejects, with row and
column, where it can say); a failure while reading the rows inside the load's transaction is
a `ReadFailed`, turned into a `FileProblem` by `read_failure` once the transaction is rolled
back. A file whose content changed while it was read (`changed`) is not loaded.

Every problem reaches people as a `Violation`: file, row, column, value and reason.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import zlib
from collections import Counter
from dataclasses import dataclass

import duckdb
import fsspec

from flows.ingest.connectors import Extract
from flows.ingest.contract import Table
from flows.ingest.rules import TEXT_TYPES, ident, staged_select
from flows.masking import mask_text
from flows.warehouse import Connection, sql_str

log = logging.getLogger(__name__)

MAX_SHOWN = 120  # characters of a value shown in a message or kept in raw._quarantine
# Longest CSV line read (DuckDB's default is 2 MB): long enough that an oversized text value
# is reported by the column rules, naming its column, rather than as an unreadable line.
MAX_LINE_BYTES = 32 << 20


def shown(text: str, limit: int = 1000) -> str:
    """File content as it may reach people (messages, raw._quarantine, run records): every
    value and reason of a `Violation` passes here, bounded and with secrets masked."""
    return mask_text(text, limit)


@dataclass(frozen=True)
class Violation:
    """One problem of an extract, as error messages and `raw._quarantine` name it."""

    table: str
    source_file: str
    row: int | None  # data row, 1 = first row after a CSV header; None = the whole file
    column: str | None
    value: str | None
    reason: str

    def __post_init__(self) -> None:
        # a value, and a reason quoting one (an earlier version, a CSV line), is file content
        object.__setattr__(
            self, "value", None if self.value is None else shown(self.value, 2 * MAX_SHOWN)
        )
        object.__setattr__(self, "reason", shown(self.reason))

    def describe(self) -> str:
        where = [self.source_file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column {self.column}")
        value = f" value {self.value!r}" if self.value is not None else ""
        return f"{', '.join(where)}:{value} {self.reason} (table {self.table})"


def clip(value: str | None, limit: int = MAX_SHOWN) -> str | None:
    """A value short enough to show: a 10 MB cell must not become a 10 MB error message."""
    if value is None or len(value) <= limit:
        return value
    return f"{value[:limit]}... ({len(value)} characters)"


class FileProblem(Exception):
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
        raise FileProblem(f"cannot be decompressed: {exc}") from None
    if not first.strip():
        raise FileProblem("the file is empty: expected a header line with the column names")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        utf16 = first.startswith((b"\xff\xfe", b"\xfe\xff"))
        raise FileProblem(
            "the header line is not UTF-8"
            + (" (it is UTF-16, as Excel's 'Unicode text' writes)" if utf16 else "")
            + ": files must be UTF-8 encoded"
        ) from None
    names = next(csv.reader(io.StringIO(text)))
    names = [n.strip() for n in names]
    unnamed = [str(i) for i, n in enumerate(names, 1) if not n]
    if unnamed:
        raise FileProblem(
            f"the header has no name for column(s) {', '.join(unnamed)} (position in the "
            "header line; a trailing comma makes one): every column must be named"
        )
    dupes = sorted(n for n, k in Counter(n.lower() for n in names).items() if k > 1)
    if dupes:
        raise FileProblem(f"the header repeats column(s) {', '.join(dupes)} (ignoring case)")
    return names


def _csv_reader(uri: str, names: list[str], *extra: str) -> str:
    columns = "{" + ", ".join(f"{sql_str(n)}: 'VARCHAR'" for n in names) + "}"
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
    return f"read_csv({sql_str(uri)}, {options})"


def _json_reader(con: Connection, uri: str) -> str:
    """JSON Lines with every column read as JSON: DuckDB's type inference would otherwise
    give a column with one nested object the type JSON and quote every string in it
    (`"Logistics"`), or read a column of whole numbers with one fraction as DOUBLE. Each
    value's kind is judged per row instead (`flows/ingest/rules.py` as_text, json_kind)."""
    inferred = f"read_json({sql_str(uri)}, format='newline_delimited')"
    names = [str(r[0]) for r in con.execute(f"describe select * from {inferred}").fetchall()]
    columns = "{" + ", ".join(f"{sql_str(n)}: 'JSON'" for n in names) + "}"
    return f"read_json({sql_str(uri)}, format='newline_delimited', columns={columns})"


def _reader(con: Connection, extract: Extract) -> tuple[str, list[str] | None]:
    uri = sql_str(extract.uri)
    if extract.file_format == "csv":
        names = _csv_header(extract)
        return _csv_reader(extract.uri, names), names
    if extract.file_format == "parquet":
        return f"read_parquet({uri})", None
    return _json_reader(con, extract.uri), None


def _csv_rejects(
    con: Connection, extract: Extract, names: list[str]
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
            clip(csv_line),
            f"{str(kind).lower()}: {message} (line {line} of the file; "
            "a file that does not parse is not loaded at all)",
        )
        for line, column, csv_line, kind, message in found
    ]


def _header_mismatch(
    con: Connection,
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
                f"select Delimiter from sniff_csv({sql_str(extract.uri)})"
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
    """The SHA-256 of a file's bytes as stored (a compressed file is not decompressed)."""
    digest = hashlib.sha256()
    with fsspec.open(uri, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    return clip(text, 400) or type(exc).__name__


@dataclass(frozen=True)
class Opened:
    """An extract whose header (or schema) is known to fit the contract; rows not read yet."""

    reader: str  # the DuckDB table function that reads it
    types: dict[str, str]  # column -> type, as the file gives it (all VARCHAR for CSV)
    names: list[str] | None = None  # a CSV file's header


class ReadFailed(Exception):
    """DuckDB failed while reading the rows of one extract (inside the load's transaction)."""

    def __init__(self, extract: Extract, opened: Opened, error: duckdb.Error) -> None:
        super().__init__(str(error))
        self.extract, self.opened, self.error = extract, opened, error


def numbered_reader(extract: Extract, opened: Opened) -> tuple[str, str]:
    """The file's rows with their row numbers (1 = the first data row): a relation and the
    name of its row-number column (one the file does not use)."""
    row_col = "_row"
    while row_col in opened.types:
        row_col = f"_{row_col}"
    if extract.file_format == "parquet" and "file_row_number" not in opened.types:
        reader = opened.reader.removesuffix(")") + ", file_row_number=true)"
        return f"(select *, file_row_number + 1 as {row_col} from {reader})", row_col
    return f"(select *, row_number() over () as {row_col} from {opened.reader})", row_col


def open_extract(con: Connection, extract: Extract) -> Opened:
    """What can be checked without reading the rows: the file opens, the header or schema has
    the required columns. Run outside a transaction (a failed statement would abort it)."""
    names: list[str] | None = None
    try:
        reader, names = _reader(con, extract)
        described = con.execute(f"describe select * from {reader}").fetchall()
    except duckdb.Error as exc:
        raise FileProblem(
            f"cannot be read as {extract.file_format}: {_duckdb_reason(exc, extract.uri)}",
            _csv_rejects(con, extract, names) if names is not None else [],
        ) from exc
    types = {str(r[0]): str(r[1]) for r in described}
    missing = [c for c in extract.table.required_columns if c not in types]
    if missing:
        raise FileProblem(
            _header_mismatch(con, extract, extract.table, missing, list(types)),
            column=", ".join(missing),
        )
    return Opened(reader, types, names)


def read_failure(con: Connection, failed: ReadFailed) -> FileProblem:
    """What went wrong reading a file, with every line DuckDB rejects when it is a CSV file.
    Run outside a transaction, after the one the failure aborted was rolled back."""
    extract, opened = failed.extract, failed.opened
    return FileProblem(
        f"cannot be read as {extract.file_format}: {_duckdb_reason(failed.error, extract.uri)}",
        _csv_rejects(con, extract, opened.names) if opened.names is not None else [],
    )


def changed(extract: Extract) -> FileProblem | None:
    """The file's content read again once its rows are read: the problem to report when it is
    not what it was when listed (a writer still busy with it), None when it is."""
    after = content_sha256(extract.uri)
    if after == extract.fingerprint:
        return None
    return FileProblem(
        f"the file changed while it was being read (sha256 {extract.fingerprint[:12]} "
        f"when listed, {after[:12]} after reading): nothing of it is loaded; the next "
        "run loads it once it has stopped changing"
    )


def stage_extract(
    con: Connection,
    extract: Extract,
    opened: Opened,
    staging: str,
    first: bool,
    source_types: dict[tuple[str, str], str] | None = None,
) -> int:
    """Append one extract to the temp table `staging` (typed + original values + _file/_row).

    Raises ReadFailed when DuckDB cannot read the rows, FileProblem when the file changed
    while it was read. `source_types` receives (file, column) -> the type a typed file
    (Parquet, JSON) gives a contract text column when it is not text, for the reference
    checks' messages.
    """
    table, types = extract.table, opened.types
    row_col = "_row"
    while row_col in types:  # a file may have a column of that name
        row_col = f"_{row_col}"
    if source_types is not None:
        for c in table.columns:
            if c.name in types and c.type == "VARCHAR" and types[c.name] not in TEXT_TYPES:
                source_types[(extract.origin, c.name)] = types[c.name]
    body = staged_select(table, types, extract.origin, row_col)
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
        raise ReadFailed(extract, opened, exc) from exc
    problem = changed(extract)
    if problem is not None:
        con.execute(f"delete from {staging} where _file = ?", [extract.origin])
        raise problem
    if source_types is not None:
        _json_number_ids(con, extract, staging, types, source_types)
    n = int(counted[0]) if counted else 0
    if n == 0:
        log.warning("%s has no rows (only a header, or nothing): nothing to load", extract.origin)
    return n


def _json_number_ids(
    con: Connection,
    extract: Extract,
    staging: str,
    types: dict[str, str],
    source_types: dict[tuple[str, str], str],
) -> None:
    """A JSON file's text columns that hold numbers (`"account_id": 101`), for the hint that
    ids are text: JSON columns are read as JSON, so the file's type does not say it."""
    for c in extract.table.columns:
        if c.type == "VARCHAR" and types.get(c.name) == "JSON":
            kind = ident("_kind_" + c.name)
            found = con.execute(
                f"select any_value({kind}) from {staging} where _file = ? and {kind} in "
                "('BIGINT', 'UBIGINT', 'DOUBLE')",
                [extract.origin],
            ).fetchone()
            if found and found[0]:
                source_types[(extract.origin, c.name)] = f"a JSON number ({found[0]})"


def file_problems(key: str, extract: Extract, exc: FileProblem) -> list[Violation]:
    """A file problem as violations of table `key`: one per rejected line, or one for the file."""
    return [
        Violation(key, extract.origin, row, column, value, reason)
        for row, column, value, reason in exc.rows
    ] or [Violation(key, extract.origin, None, exc.column, None, str(exc))]
