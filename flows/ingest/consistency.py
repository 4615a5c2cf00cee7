"""Rules that look beyond one row: across tables, across loads, and against the clock.

- `Table.agreements` (flows/ingest/contract.py): a value reached from a row through its
  references equals another (a change's plan belongs to the subscription's product);
- history is not rewritten: a row an earlier load holds (same key, and version where the table
  has versions) may come again only unchanged, unless its file is a correction file
  (`CORRECTION_PATTERN`), whose restatements are logged with both values;
- the temp table `_clock` that the `not_future` rule of `flows/ingest/rules.py` reads.

Parents are loaded before their children, so the rules resolve against raw alone. The SQL
builders are pure; `breaks_across` runs them on one file of the fast path and
`precise_rules` gives the precise path's queries naming every problem.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from flows.ingest.contract import (
    CORRECTION_PATTERN,
    FUTURE_TOLERANCE,
    TABLES_BY_KEY,
    Agreement,
    Table,
)
from flows.ingest.rules import dup_key, ident
from flows.warehouse import Connection, sql_str

log = logging.getLogger(__name__)


def _latest(table: Table) -> str:
    """raw.<table> with one row per primary key: its latest version (rows without versions
    that came again are the same row: a changed one is rejected by `redelivered`)."""
    pk = ", ".join(ident(k) for k in table.primary_key)
    order = f"{ident(table.updated_at)} desc nulls last, " if table.updated_at else ""
    return (
        f"(select * from raw.{table.raw_relation} qualify row_number() over "
        f"(partition by {pk} order by {order}_loaded_at desc) = 1)"
    )


def _follow(table: Table, path: tuple[str, ...], side: str) -> tuple[list[str], str, str]:
    """Joins from the row `s` along `path` (reference columns, then the compared column), the
    SQL of the value reached and its name (`source.table.column`)."""
    joins: list[str] = []
    here, alias = table, "s"
    for i, column in enumerate(path[:-1]):
        reference = {c.name: c.references for c in here.columns}.get(column)
        if not reference:
            raise ValueError(
                f"flows/ingest/contract.py: {table.source}.{table.name} agreement path "
                f"{'.'.join(path)}: {here.source}.{here.name}.{column} is not a reference"
            )
        src, tbl, key = reference.split(".")
        parent = TABLES_BY_KEY[f"{src}.{tbl}"]
        nxt = f"_{side}{i}"
        joins.append(
            f"left join {_latest(parent)} {nxt} on {nxt}.{ident(key)} = {alias}.{ident(column)}"
        )
        here, alias = parent, nxt
    return joins, f"{alias}.{ident(path[-1])}", f"{here.source}.{here.name}.{path[-1]}"


def agreement_sql(table: Table, agreement: Agreement, rows: str) -> tuple[str, str]:
    """(FROM ... WHERE over `rows` aliased `s` selecting the rows that break `agreement`,
    SQL of the reason). References resolve in raw: parents are loaded first."""
    ljoins, left, lname = _follow(table, agreement.left, "l")
    rjoins, right, rname = _follow(table, agreement.right, "r")

    def named(path: tuple[str, ...], name: str) -> str:
        via = f" (through {' -> '.join(path[:-1])})" if len(path) > 1 else ""
        return f"{name}{via}"

    where = (
        f"from {rows} s {' '.join(ljoins + rjoins)} "
        f"where {left} is not null and {right} is not null and {left} <> {right}"
    )
    reason = (
        f"{sql_str(named(agreement.left, lname) + ' is ')} || cast({left} as varchar) || "
        f"{sql_str(', but ' + named(agreement.right, rname) + ' is ')} || "
        f"cast({right} as varchar) || {sql_str(': ' + agreement.reason)}"
    )
    return where, reason


def agreement_rules(table: Table, staging: str) -> list[tuple[str, str]]:
    """(column, SQL selecting _file, _row, value, reason) for each of `Table.agreements`."""
    rules = []
    for a in table.agreements:
        where, reason = agreement_sql(table, a, staging)
        rules.append(
            (
                a.column,
                f"select s._file, s._row, s.{ident('_orig_' + a.column)} as value, "
                f"{reason} as reason {where}",
            )
        )
    return rules


def _compared(table: Table) -> list[str]:
    key = set(dup_key(table))
    return [c.name for c in table.columns if c.name not in key]


def redelivered_sql(
    table: Table, orig: dict[str, str] | None = None
) -> tuple[str, str, str, str, str]:
    """A row (aliased `s`) whose key (and version) an earlier load holds in raw (aliased `o`)
    with other values: (the join condition of `o`, the condition that they differ, SQL of the
    columns that differ, of their values now and of the reason naming the earlier version).
    `orig`: column -> SQL of the new value as written (for the values now; default none).
    Unchanged duplicates pass."""
    orig = orig or {}
    key = dup_key(table)
    on = " and ".join(f"o.{ident(k)} = s.{ident(k)}" for k in key) + (
        " and not (o._run_id = (select run_id from _clock) "
        "and o._loaded_at = (select loaded_at from _clock))"
    )
    differs = {c: f"o.{ident(c)} is distinct from s.{ident(c)}" for c in _compared(table)}
    differ = " or ".join(f"({d})" for d in differs.values()) or "false"

    def listed(parts: list[str], sep: str = ", ") -> str:
        return f"concat_ws({sql_str(sep)}, {', '.join(parts)})" if parts else "''"

    columns = listed([f"case when {d} then {sql_str(c)} end" for c, d in differs.items()])
    now = listed(
        [
            f"case when {d} then coalesce({orig.get(c, 'null')}, '(empty)') end"
            for c, d in differs.items()
        ]
    )
    was = listed(
        [
            f"case when {d} then {sql_str(c + ' was ')} || "
            f"coalesce(cast(o.{ident(c)} as varchar), '(empty)') end"
            for c, d in differs.items()
        ],
        "; ",
    )
    what = (
        f"this version (same {table.updated_at}) was loaded before with other values"
        if table.updated_at
        else "this row was loaded before with other values"
    )
    fix = (
        f"a change is a new version with a later {table.updated_at}"
        if table.updated_at
        else "a row of a table without versions may not change once loaded (the history it "
        "records would be rewritten); a restatement comes in a file named "
        "<name>_correction.<ext>"
    )
    reason = (
        f"{sql_str(what + ': ')} || {was} || ' (' || o._source_file || "
        f"coalesce(', row ' || o._row, '') || ', loaded ' || "
        f"strftime(o._loaded_at, '%Y-%m-%d %H:%M:%S') || {sql_str('); ' + fix)}"
    )
    return on, differ, columns, now, reason


def precise_rules(table: Table, staging: str, earlier: bool) -> list[tuple[str | None, str]]:
    """(column, SQL selecting _file, _row, value, reason[, column]) of the rules across loads
    for the rows staged in `staging` (`earlier`: rows of earlier loads count; not so in a full
    refresh). A changed row names the columns that differ, so its SQL returns them as a fifth
    field. The agreements are `agreement_rules`: they come after the row's own checks."""
    if not earlier:
        return []
    on, differ, columns, now, reason = redelivered_sql(
        table, {c.name: "s." + ident("_orig_" + c.name) for c in table.columns}
    )
    return [
        (
            None,
            f"select s._file, s._row, {now} as value, {reason} as reason, {columns} "
            f"from {staging} s join raw.{table.raw_relation} o on {on} where ({differ}) "
            f"and not regexp_matches(s._file, {sql_str(CORRECTION_PATTERN)}) "
            "qualify row_number() over (partition by s._file, s._row "
            "order by o._loaded_at, o._row) = 1",
        )
    ]


def is_correction(origin: str) -> bool:
    """Whether a file says by its name that it restates loaded rows (CORRECTION_PATTERN)."""
    return re.search(CORRECTION_PATTERN, origin) is not None


def breaks_across(
    con: Connection,
    table: Table,
    source: str,
    origin: str,
    span: list[tuple[object, object]],
) -> bool:
    """Whether a row of `source` (the file `origin` as `fast_select` reads it) breaks a rule
    across tables (`Table.agreements`) or changes a row an earlier load holds
    (`redelivered_sql`); a correction file's changed rows are logged, with both values.

    `span`: the file's (min, max) of each `dup_key` column. Raw is read only within it, so a
    month of usage is compared with the raw row groups of that month alone (zone maps), not
    with all the history loaded before it."""
    for a in table.agreements:
        where, _ = agreement_sql(table, a, source)
        found = con.execute(f"select exists (select 1 {where})").fetchone()
        if found and found[0]:
            return True
    now = {c.name: f"cast(s.{ident(c.name)} as varchar)" for c in table.columns}
    on, differ, columns, values, _ = redelivered_sql(table, now)
    within = " and ".join(f"o.{ident(k)} between ? and ?" for k in dup_key(table))
    bounds = [v for pair in span for v in pair]
    changed_rows = (
        f"from {source} s join (select * from raw.{table.raw_relation} o where {within}) o "
        f"on {on} where {differ}"
    )
    if not is_correction(origin):
        found = con.execute(f"select exists (select 1 {changed_rows})", bounds).fetchone()
        return bool(found and found[0])
    restated = con.execute(
        f"select count(*), arg_min('row ' || s._row || ': ' || {columns} || ' now ' || {values} "
        f"|| ', before ' || o._source_file || coalesce(', row ' || o._row, ''), s._row) "
        f"{changed_rows}",
        bounds,
    ).fetchone()
    if restated and restated[0]:
        log.warning(
            "%s restates %s row(s) of %s.%s loaded before (a correction file); first: %s",
            origin,
            restated[0],
            table.source,
            table.name,
            restated[1],
        )
    return False


def register_clock(con: Connection, run_id: str, loaded_at: datetime) -> None:
    """The temp table `_clock` the checks read: this load (its rows in raw are not "earlier")
    and the latest instant a `not_future` column may hold (the clock plus the tolerance)."""
    con.execute(
        "create or replace temp table _clock as select ?::varchar as run_id, "
        "?::timestamp as loaded_at, ?::timestamp as latest",
        [run_id, loaded_at, loaded_at + FUTURE_TOLERANCE],
    )
