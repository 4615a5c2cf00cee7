"""The SQL of the extract contract's checks: pure functions from a contract table to SQL text.

Nothing here opens or takes a connection; `flows/ingest/load.py` runs what these return. Two
ways to check the rows of one table:

- fast: `fast_select` reads a file with its types and `fast_counts` counts, in one aggregate,
  the rows that break any rule of `row_checks` or reference a parent missing from raw;
- precise: `staged_select` stages every file with its original text and row numbers and
  `staged_rules` selects every problem (file, row, value, reason, column) for the message.

Types are the contract's DuckDB types; `typed` reads a value written as text the way the
contract says (ISO 8601 timestamps and dates only, offsets converted to UTC).
"""

from __future__ import annotations

from flows.ingest.contract import (
    DATE_PATTERN,
    DECIMAL_PATTERN,
    DOUBLE_PATTERN,
    INTEGER_PATTERN,
    MAX_TEXT_LENGTH,
    TABLES_BY_KEY,
    TIMESTAMP_PATTERN,
    VOCABULARIES,
    Column,
    Table,
    future_tolerance_text,
)
from flows.warehouse import sql_str

TEXT_TYPES = {"VARCHAR", "JSON"}  # file types whose values are read as written text
INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}


def ident(name: str) -> str:
    """A column name as a quoted SQL identifier, whatever characters the file gave it."""
    return '"' + name.replace('"', '""') + '"'


_EXPECTED = {
    "TIMESTAMP": "expected ISO 8601 such as 2024-03-01T12:00:00Z or 2024-03-01T14:00:00+02:00",
    "DATE": "expected a date YYYY-MM-DD",
    "INTEGER": "expected a whole number from -2147483648 to 2147483647, such as 120 or 120.0; "
    "a fraction, an exponent or a thousands separator is not one",
    "BIGINT": "expected a whole number of at most 18 digits",
    "DOUBLE": "expected a number such as 12.5 or 1.2e3, without digit separators",
    "BOOLEAN": "expected true or false",
    "VARCHAR": "expected text",
}


def _expected(type_: str) -> str:
    if type_.startswith("DECIMAL("):
        precision, scale = (int(x) for x in type_[8:-1].split(","))
        return (
            f"expected a number with at most {precision - scale} digits before the decimal "
            f"point and {scale} after it, without an exponent or digit separators"
        )
    return _EXPECTED.get(type_, f"expected a {type_}")


def _scale(type_: str) -> int | None:
    if type_.startswith("DECIMAL("):
        return int(type_[8:-1].split(",")[1])
    return None


def typed(raw: str, type_: str) -> str:
    """`raw` (the value as trimmed text) as `type_`; NULL when it does not read as one.

    No cast here may change a value: a whole number must be whole (DuckDB would round "120.5"
    to 121), a date must have no time of day (a cast would cut it), whatever the file's type:
    a typed file's value (a Parquet DOUBLE, TIMESTAMP or DECIMAL) is judged by its text too.
    """
    if type_ in INTEGER_TYPES:
        # "120.0" is 120; the zeros are cut from the text, so nothing is ever rounded
        return (
            f"case when regexp_full_match({raw}, {sql_str(INTEGER_PATTERN)}) "
            f"then try_cast(regexp_replace({raw}, '\\.0*$', '') as {type_}) end"
        )
    pattern = {"DOUBLE": DOUBLE_PATTERN}.get(
        type_, DECIMAL_PATTERN if type_.startswith("DECIMAL(") else None
    )
    if pattern is not None:
        return (
            f"case when regexp_full_match({raw}, {sql_str(pattern)}) "
            f"then try_cast({raw} as {type_}) end"
        )
    if type_ == "DATE":
        # a timestamp with a time of day is not a date: cutting it would shift days
        return (
            f"case when regexp_full_match({raw}, {sql_str(DATE_PATTERN)}) "
            f"then try_cast(left({raw}, 10) as date) end"
        )
    if type_ == "TIMESTAMP":
        # Offsets are honoured and converted to UTC; naive values are taken as UTC. Only ISO
        # 8601 is read: DuckDB alone would also take "PST", "epoch" or an offset of +25:00.
        return (
            f"case when regexp_full_match({raw}, {sql_str(TIMESTAMP_PATTERN)}) "
            f"then (try_cast({raw} as timestamptz) at time zone 'UTC') end"
        )
    return f"try_cast({raw} as {type_})"


def as_text(q: str, file_type: str) -> str:
    """SQL of one value of a file's column `q` as the text the file delivered (trimmed, NULL
    when empty). A JSON file's column is read as JSON: a string is its text without the quotes
    (never `"Logistics"` with them), a number or true/false its literal, null is NULL, and a
    nested object or array its JSON text, which `row_checks` rejects in a scalar column."""
    if file_type == "JSON":
        return (
            f"nullif(trim(case json_type({q}) when 'VARCHAR' then {q} ->> '$' "
            f"when 'NULL' then null else cast({q} as varchar) end), '')"
        )
    return f"nullif(trim(cast({q} as varchar)), '')"


def json_kind(q: str, file_type: str) -> str:
    """SQL of the JSON kind of a value (OBJECT, ARRAY, VARCHAR, ...); NULL for other files."""
    return f"json_type({q})" if file_type == "JSON" else "cast(null as varchar)"


def _extra(table: Table, types: dict[str, str]) -> str:
    """SQL of a file's columns the contract does not know, as one JSON object (NULL if none)."""
    known = {c.name for c in table.columns}
    extras = [c for c in types if c not in known]
    if not extras:
        return "cast(null as json)"
    return "to_json(struct_pack(" + ", ".join(f"{ident(e)} := {ident(e)}" for e in extras) + "))"


def staged_select(table: Table, types: dict[str, str], origin: str, row_col: str) -> str:
    """The select staging one file for the precise checks, from the view `_src` over it.

    Each contract column typed and as written (`_orig_<column>`: trimmed text, NULL when
    empty; typed NULLs for a column the file lacks; `_kind_<column>`: its JSON kind in a JSON
    file), the unknown columns as `_extra`, the file's name as `_file` and its row number (the
    view's column `row_col`) as `_row`.
    """
    selects = []
    for c in table.columns:
        if c.name in types:
            raw = as_text(ident(c.name), types[c.name])
            selects.append(f"{typed(raw, c.type)} as {ident(c.name)}")
            selects.append(f"{raw} as {ident('_orig_' + c.name)}")
            kind = json_kind(ident(c.name), types[c.name])
        else:
            selects.append(f"cast(null as {c.type}) as {ident(c.name)}")
            selects.append(f"cast(null as varchar) as {ident('_orig_' + c.name)}")
            kind = "cast(null as varchar)"
        selects.append(f"{kind} as {ident('_kind_' + c.name)}")
    return (
        f"select {', '.join(selects)}, {_extra(table, types)} as _extra, "
        f"{sql_str(origin)} as _file, {row_col} as _row from _src"
    )


def _lit(value: float) -> str:
    return repr(float(value))


def row_checks(
    table: Table,
    orig: dict[str, str],
    derived: frozenset[str] = frozenset(),
    kinds: dict[str, str] | None = None,
) -> list[tuple[str, str, str]]:
    """(column, condition, reason SQL) of every check of one row's own values.

    `orig`: column -> SQL of the value as the file wrote it (trimmed text, NULL when empty).
    `kinds`: column -> SQL of the value's JSON kind, for the columns a JSON file holds.
    `derived`: columns whose file type is the contract's type (a Parquet DATE or DOUBLE) or
    that the file lacks: their text is the typed value cast back, so they cannot fail to
    parse, are empty exactly when NULL and cannot hold more decimals than their type.
    """
    checks: list[tuple[str, str, str]] = []

    def add(column: Column, where: str, reason: str) -> None:
        checks.append((column.name, where, reason))

    for c in table.columns:
        q, o = ident(c.name), orig[c.name]
        kind = (kinds or {}).get(c.name)
        nested = f"coalesce({kind} in ('OBJECT', 'ARRAY'), false)" if kind else "false"
        if kind:
            add(
                c,
                nested,
                f"'is a nested JSON ' || lower({kind}) || ', not a single value; "
                f"{c.name} holds {c.type} (this row is not loaded)'",
            )
        if c.name not in derived:
            add(
                c,
                f"{o} is not null and {q} is null and not {nested}",
                sql_str(f"is not a valid {c.type} ({_expected(c.type)})"),
            )
        if c.required:
            add(
                c,
                f"{q} is null" if c.name in derived else f"{o} is null",
                sql_str("is empty; a value is required"),
            )
        finite = ""
        if c.type == "DOUBLE":
            add(
                c,
                f"{q} is not null and not isfinite({q})",
                sql_str("is not a finite number (NaN and infinity are not allowed)"),
            )
            finite = f" and isfinite({q})"
        if c.min_value is not None:
            add(
                c,
                f"{q} < {_lit(c.min_value)}{finite}",
                sql_str(f"is below the minimum {c.min_value:g}"),
            )
        if c.max_value is not None:
            add(
                c,
                f"{q} > {_lit(c.max_value)}{finite}",
                sql_str(f"is above the maximum {c.max_value:g}"),
            )
        if c.not_future:
            latest = "(select latest from _clock)"
            limit = f"cast({latest} as date)" if c.type == "DATE" else latest
            add(
                c,
                f"{q} > {limit}",
                f"'is in the future: later than the load''s clock plus "
                f"{future_tolerance_text()} (' || strftime({latest}, '%Y-%m-%dT%H:%M:%SZ') || '); "
                f"{c.name} records something that has happened'",
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
                sql_str(f"has more than {scale} decimals, which {c.type} cannot hold"),
            )
        if c.first_of_month:
            add(
                c,
                f"{q} is not null and day({q}) <> 1",
                sql_str(
                    "is not the first day of a month (a monthly value is dated by its month's first day)"
                ),
            )
        if c.values:
            listed = ", ".join(c.values)
            add(
                c,
                f"{q} is not null and {q} not in ({', '.join(sql_str(v) for v in c.values)})",
                sql_str(f"is not one of the allowed values: {listed}"),
            )
        if c.vocabulary:
            vocab = sql_str(c.vocabulary)
            add(
                c,
                f"{q} is not null and {q} not in "
                f"(select value from _vocabulary where vocabulary = {vocab})",
                sql_str(f"is not one of {VOCABULARIES[c.vocabulary]} (config/business.yml): ")
                + " || coalesce((select string_agg(value, ', ' order by value) from _vocabulary "
                f"where vocabulary = {vocab}), 'none declared')",
            )
        if c.is_currency:
            add(
                c,
                f"{q} is not null and {q} not in (select code from _currencies)",
                sql_str("is not an ISO 4217 currency code"),
            )
        if c.currency_column:
            cur = ident(c.currency_column)
            add(
                c,
                f"{q} is not null and {decimals} > "
                f"(select minor_units from _currencies where code = {cur})",
                f"'has more decimals than its currency ' || {cur} || ' allows ('"
                f" || (select minor_units from _currencies where code = {cur}) || ')'",
            )
        if c.not_before:
            other, other_orig = ident(c.not_before), orig[c.not_before]
            add(
                c,
                f"{q} < {other}",
                f"'is before {c.not_before} (' || {other_orig} || ') of the same row'",
            )
    return checks


def staged_rules(
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
    checks = row_checks(
        table,
        {c.name: ident("_orig_" + c.name) for c in table.columns},
        kinds={c.name: ident("_kind_" + c.name) for c in table.columns},
    )
    for c in table.columns:
        q, orig = ident(c.name), ident("_orig_" + c.name)
        if c.references:
            src, tbl, col = c.references.split(".")
            parent = TABLES_BY_KEY[f"{src}.{tbl}"]
            sources = [f"select {ident(col)} as k from raw.{parent.raw_relation}"][: int(earlier)]
            if parent.raw_relation in staged:
                sources.append(f"select {ident(col)} as k from _stage_{parent.raw_relation}")
            sources = sources or ["select null as k where false"]
            rules.append(
                (
                    c.name,
                    f"select _file, _row, {orig} as value, "
                    f"{sql_str(f'has no matching {c.references} (loaded now or earlier)')} "
                    f"as reason from {staging} where {q} is not null and not exists "
                    f"(select 1 from ({' union all '.join(sources)}) p where p.k = {q})",
                )
            )
    if checks:
        hits = ", ".join(
            f"case when {where} then struct_pack(c := {sql_str(column)}, "
            f"v := {ident('_orig_' + column)}, r := {reason}) end"
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
    key = [ident(k) for k in table.primary_key]
    if table.updated_at:
        key.append(ident(table.updated_at))
    others = [c.name for c in table.columns if c.name not in dup_key(table)]
    first = "struct_pack(" + ", ".join(f"{ident(c)} := {ident(c)}" for c in others) + ")"
    differ = (
        "concat_ws(', ', "
        + ", ".join(
            f"case when struct_extract(first_values, {sql_str(c)}) is distinct from {ident(c)} "
            f"then {sql_str(c)} end"
            for c in others
        )
        + ")"
        if others
        else "''"
    )
    rules.append(
        (
            ", ".join(table.primary_key),
            # only the keys that repeat go through the window (it is the slow part)
            f"select _file, _row, concat_ws(', ', {', '.join(key)}) as value, "
            f"'repeats a primary key already in row ' || first_row || ' of ' || first_file "
            f"|| ' in this load' || coalesce(' (other values in ' || nullif({differ}, '') || ')', "
            f"' (with the same values)') as reason "
            f"from (select s.*, row_number() over w as n, first(_row) over w as first_row, "
            f"first(_file) over w as first_file, first({first}) over w as first_values "
            f"from {staging} s semi join "
            f"(select {', '.join(key)} from {staging} group by all having count(*) > 1) "
            f"using ({', '.join(key)}) "
            f"window w as (partition by {', '.join(key)} order by _file, _row)) where n > 1",
        )
    )
    for u in table.unique:
        cols = [ident(x) for x in u.columns]
        pk = [ident(k) for k in table.primary_key]
        pk_text = ", ".join(table.primary_key)
        same = " and ".join(f"s.{x} = o.{x}" for x in cols)
        other_key = " and ".join(f"s.{k} = o.{k}" for k in pk)
        rules.append(
            (
                ", ".join(u.columns),
                f"select s._file, s._row, concat_ws(', ', {', '.join('s.' + x for x in cols)}) "
                f"as value, {sql_str(u.reason + ': ' + pk_text + ' ')} || "
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


def fast_select(
    table: Table, types: dict[str, str]
) -> tuple[str, dict[str, str], frozenset[str], dict[str, str]]:
    """The typed columns of one file (plus the text of those read from text), its `_extra`.

    Returns the select list, column -> SQL of the value as written (for `row_checks`), the
    columns whose text is derived from the typed value (`row_checks`' `derived`) and column ->
    SQL of the JSON kind of the columns a JSON file holds (`row_checks`' `kinds`). A column the
    file holds in the contract's own type (Parquet usage: DATE, DOUBLE) is taken as it is, with
    no round trip through text; the values are the same as `staged_select`'s.
    """
    selects: list[str] = []
    orig: dict[str, str] = {}
    derived: set[str] = set()
    kinds: dict[str, str] = {}
    for c in table.columns:
        q = ident(c.name)
        if c.name not in types:
            selects.append(f"cast(null as {c.type}) as {q}")
            orig[c.name] = "cast(null as varchar)"
            derived.add(c.name)
            continue
        if types[c.name] == "JSON":
            selects.append(f"{json_kind(q, 'JSON')} as {ident('_kind_' + c.name)}")
            kinds[c.name] = ident("_kind_" + c.name)
        if c.type == "VARCHAR":  # the typed value is the trimmed text itself
            selects.append(f"{as_text(q, types[c.name])} as {q}")
            orig[c.name] = q
        elif types[c.name] == c.type:
            selects.append(q)
            orig[c.name] = f"cast({q} as varchar)"
            derived.add(c.name)
        else:
            raw = as_text(q, types[c.name])
            selects.append(f"{typed(raw, c.type)} as {q}")
            selects.append(f"{raw} as {ident('_orig_' + c.name)}")
            orig[c.name] = ident("_orig_" + c.name)
    selects.append(f"{_extra(table, types)} as _extra")
    return ", ".join(selects), orig, frozenset(derived), kinds


def dup_key(table: Table) -> list[str]:
    """The columns no two rows of one load may share (a key and its version)."""
    return [*table.primary_key, *([table.updated_at] if table.updated_at else [])]


def fast_counts(
    table: Table,
    orig: dict[str, str],
    derived: frozenset[str],
    kinds: dict[str, str] | None = None,
) -> list[str]:
    """Aggregates over one file as `fast_select` reads it (aliased `s`): the rows that break
    any of `row_checks`, then for each reference column the rows whose parent is not in raw."""
    checks = row_checks(table, orig, derived, kinds)
    counts = [f"count(*) filter (where {' or '.join(f'({w})' for _, w, _ in checks)})"]
    for c in table.columns:
        if c.references:
            src, tbl, col = c.references.split(".")
            parent = f"raw.{TABLES_BY_KEY[f'{src}.{tbl}'].raw_relation}"
            q = ident(c.name)
            counts.append(
                f"count(*) filter (where s.{q} is not null and not exists "
                f"(select 1 from {parent} p where p.{ident(col)} = s.{q}))"
            )
    return counts


def key_lookup(table: Table, staged: set[str]) -> str | None:
    """Which of the values passed as its one parameter are keys of `table` (in raw, or staged
    in this load): for the hints on unmatched references. None for a composite key."""
    if len(table.primary_key) != 1:
        return None
    k = ident(table.primary_key[0])
    parts = [f"select {k} as k from raw.{table.raw_relation}"]
    if table.raw_relation in staged:
        parts.append(f"select {k} from _stage_{table.raw_relation}")
    return (
        f"select distinct k from ({' union all '.join(parts)}) where k in "
        "(select unnest(?::varchar[]))"
    )
