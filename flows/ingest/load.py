"""Load extracts into the private warehouse's `raw` schema, checked against the contract.

Connectors (`flows/ingest/connectors/`) say what is new for each contract table, asking the
ledger (`flows/ingest/ledger.py`) what was loaded before; this module opens each extract
(`flows/ingest/readers.py`), checks it against `flows/ingest/contract.py` with the SQL of
`flows/ingest/rules.py` (each row's values) and `flows/ingest/consistency.py` (across tables,
across loads) and appends it to `raw.<source>__<table>`, then records it in
`raw._load_ledger`: all in one transaction, so a load is kept whole or not at all.

Rows that break the contract are listed with file, row, column, value and reason. Per table,
the `bad_rows` policy (config/sources.yml) either fails the whole load (default: nothing of it
is kept) or moves the bad rows to `raw._quarantine` and loads the rest.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from flows.errors import ExtractError
from flows.faults import crash_point
from flows.ingest.connectors import Extract
from flows.ingest.consistency import agreement_rules, breaks_across, precise_rules, register_clock
from flows.ingest.contract import TABLES, Table
from flows.ingest.currencies import MINOR_UNITS
from flows.ingest.declarations import register_vocabularies, write_declarations
from flows.ingest.ledger import LedgerView, ensure_raw_schema, record_loads
from flows.ingest.readers import (
    FileProblem,
    Opened,
    ReadFailed,
    Violation,
    changed,
    clip,
    file_problems,
    numbered_reader,
    open_extract,
    read_failure,
    stage_extract,
)
from flows.ingest.report import LoadedFile, LoadReport
from flows.ingest.rules import dup_key, fast_counts, fast_select, ident, key_lookup, staged_rules
from flows.ingest.sources import BadRows, SourcesConfig, build_connector, files_config
from flows.settings import get_settings
from flows.warehouse import Connection, Warehouse
from models.business import Business, load_business

log = logging.getLogger(__name__)

MAX_LISTED = 20  # violations spelled out in an error message; all are in raw._quarantine


def load_sources(
    config: SourcesConfig,
    warehouse: Warehouse,
    run_id: str | None = None,
    *,
    full_refresh: bool = False,
    staging_dir: Path | None = None,
    business: Business | None = None,
) -> LoadReport:
    """Load every new extract of every source into raw: all of it, or (on failure) none.

    `business`: the declaration whose names the contract's vocabulary columns accept (usage
    metrics); default: the project's config/business.yml."""
    run_id = run_id or uuid.uuid4().hex
    report = LoadReport(run_id=run_id)
    staging_dir = staging_dir or warehouse.path.parent / "extracts"
    loaded_at = datetime.now(UTC).replace(tzinfo=None)
    # appends need not keep the files' row order (row numbers come from the precise path,
    # which turns it back on): big inserts run in parallel and hold less in memory
    with warehouse.connect(preserve_insertion_order=False) as con:
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
        register_clock(con, run_id, loaded_at)
        business = business or load_business(get_settings().business_file)
        register_vocabularies(con, business)
        _load(con, config.bad_rows, extracts, report, run_id, loaded_at, full_refresh, business)
    return report


def load_landing(
    landing_dir: Path,
    warehouse: Warehouse,
    run_id: str | None = None,
    *,
    full_refresh: bool = False,
    bad_rows: BadRows | None = None,
    business: Business | None = None,
) -> LoadReport:
    """Load every source from files under one landing directory (the default layout)."""
    if not landing_dir.is_dir():
        raise ExtractError(f"landing zone {landing_dir} does not exist")
    config = files_config(landing_dir)
    if bad_rows is not None:
        config = config.model_copy(update={"bad_rows": bad_rows})
    return load_sources(config, warehouse, run_id, full_refresh=full_refresh, business=business)


def _load(
    con: Connection,
    policy: BadRows,
    extracts: dict[str, list[Extract]],
    report: LoadReport,
    run_id: str,
    loaded_at: datetime,
    full_refresh: bool,
    business: Business,
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
    bad: dict[str, FileProblem] = {}
    for files in extracts.values():
        for extract in files:
            try:
                opened[extract.origin] = open_extract(con, extract)
            except FileProblem as exc:
                bad[extract.origin] = exc
    while True:
        con.execute("begin transaction")
        try:
            if full_refresh:  # replaced, inside the transaction: a failed load keeps them
                for t in TABLES:
                    con.execute(f"delete from raw.{t.raw_relation}")
                con.execute("delete from raw._load_ledger")
            result = _stage_and_check(con, policy, extracts, opened, bad, run_id, loaded_at)
        except ReadFailed as failed:
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
        record_loads(con, run_id, report.loaded, loaded_at)
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
        write_declarations(con, business)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def _stage_and_check(
    con: Connection,
    policy: BadRows,
    extracts: dict[str, list[Extract]],
    opened: dict[str, Opened],
    bad: dict[str, FileProblem],
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
                problems = file_problems(key, extract, problem)
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


@dataclass
class _Staged:
    """What one attempt at staging and checking every extract found."""

    staged: set[str] = field(default_factory=set)
    loaded: list[LoadedFile] = field(default_factory=list)
    quarantined: list[Violation] = field(default_factory=list)
    rejected: list[Violation] = field(default_factory=list)


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


def _fast_table(
    con: Connection,
    table: Table,
    files: list[Extract],
    opened: dict[str, Opened],
    bad: dict[str, FileProblem],
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
    cols = ", ".join(ident(c.name) for c in table.columns)
    key = [ident(k) for k in dup_key(table)]
    mine = "_run_id = ? and _loaded_at = ?"
    rows: dict[str, int] = {}
    ranges: dict[str, list[tuple[object, object]]] = {}
    broken = False
    for extract in files:
        if extract.origin in bad:
            continue
        op = opened[extract.origin]
        select, orig, derived, kinds = fast_select(table, op.types)
        counts = fast_counts(table, orig, derived, kinds)
        try:
            numbered, row_col = numbered_reader(extract, op)
            if extract.file_format == "parquet":
                # a typed file is read again by each query: cheaper than copying its rows
                source = f"(select {select}, {row_col} as _row from {numbered})"
            else:  # text is parsed once, in file order (for its row numbers)
                con.execute("set preserve_insertion_order = true")
                try:
                    con.execute(
                        f"create or replace temp table _load_file as "
                        f"select {select}, {row_col} as _row from {numbered}"
                    )
                finally:
                    con.execute("set preserve_insertion_order = false")
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
            values = found[1 + len(counts) :]
            span = [(values[i], values[i + 1]) for i in range(0, len(values), 2)]
            broken = (
                any(problems)
                or bool(repeats and repeats[0])
                or (n > 0 and breaks_across(con, table, source, extract.origin, span))
            )
            if not broken:
                con.execute(
                    f"insert into {rel} ({cols}, _source_file, _row, _loaded_at, _run_id, _extra) "
                    f"select {cols}, ?, _row, ?, ?, _extra from {source}",
                    [extract.origin, loaded_at, run_id],
                )
            con.execute("drop table if exists _load_file")
        except duckdb.Error as exc:
            raise ReadFailed(extract, op, exc) from exc
        if broken:
            break
        problem = changed(extract)
        if problem is not None:
            con.execute(
                f"delete from {rel} where _source_file = ? and {mine}",
                [extract.origin, run_id, loaded_at],
            )
            bad[extract.origin] = problem
            continue
        if n == 0:
            log.warning(
                "%s has no rows (only a header, or nothing): nothing to load", extract.origin
            )
        rows[extract.origin] = n
        ranges[extract.origin] = span
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
            same = " and ".join(f"o.{ident(x)} = s.{ident(x)}" for x in u.columns)
            other = " and ".join(f"o.{ident(k)} = s.{ident(k)}" for k in table.primary_key)
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


def _precise_table(
    con: Connection,
    table: Table,
    files: list[Extract],
    opened: dict[str, Opened],
    bad: dict[str, FileProblem],
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
            except FileProblem as exc:
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
    cols = ", ".join(ident(c.name) for c in table.columns)
    con.execute(
        f"insert into raw.{table.raw_relation} "
        f"({cols}, _source_file, _row, _loaded_at, _run_id, _extra) "
        f"select {cols}, _file, _row, ?, ?, _extra from {staging}",
        [loaded_at, run_id],
    )
    con.execute(f"drop table {staging}")
    return rows, violations


def check_staged(
    con: Connection,
    table: Table,
    staging: str,
    staged: set[str],
    source_types: dict[tuple[str, str], str] | None = None,
    *,
    earlier: bool = True,
) -> list[Violation]:
    """Every problem of the rows staged in `staging` (file, row, column, value, reason), with
    a hint where an unmatched reference may be explained."""
    violations = []
    for column, sql in [
        *staged_rules(table, staging, staged, earlier),
        *precise_rules(table, staging, earlier),
    ]:
        for file, row, value, reason, *named in con.execute(sql).fetchall():
            violations.append(
                Violation(
                    f"{table.source}.{table.name}",
                    file,
                    int(row),
                    named[0] if named else column,
                    clip(value),
                    reason,
                )
            )
    # a rule across tables is not news about a value that already breaks the contract (an
    # unknown currency code is no customer's currency either)
    named_already = {(v.source_file, v.row, v.column) for v in violations}
    for column, sql in agreement_rules(table, staging):
        for file, row, value, reason in con.execute(sql).fetchall():
            if (file, int(row), column) not in named_already:
                violations.append(
                    Violation(
                        f"{table.source}.{table.name}", file, int(row), column, clip(value), reason
                    )
                )
    return _reference_hints(con, violations, staged, source_types or {})


def _reference_hints(
    con: Connection,
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
        lookup = key_lookup(t, staged)
        if lookup is None:
            continue
        for (value,) in con.execute(lookup, [values]).fetchall():
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


def _register_currencies(con: Connection) -> None:
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
    con: Connection, run_id: str, violations: list[Violation], disposition: str
) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    con.executemany(
        "insert into raw._quarantine values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (run_id, v.table, v.source_file, v.row, v.column, v.value, v.reason, disposition, now)
            for v in violations
        ],
    )
