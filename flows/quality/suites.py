"""Data-quality gates with Great Expectations at the pipeline's edges.

Suites live in `expectations/<name>.json` (GX Core 1.x suite format) with `meta.edge`
(raw | marts | drift | scores) and `meta.table`. Each expectation's `meta.severity` is
`critical` (the run stops before the next stage) or `warning` (the run goes on and the failure is
reported): severity lives in the suite, never in code.

What a gate reads is described by its suite, so the gate code stays generic (`suite_query`):
only the columns the suite references are read from DuckDB (every column when an expectation
is about the table's columns: `TABLE_SHAPE`), plus `meta.computed_columns`
(name -> SQL expression, e.g. the MRR reconciliation difference) and an optional `meta.where`.
With `meta.group_by` (columns) a suite validates a profile DuckDB computes instead of the rows:
one row per group, the group columns, `computed_columns` as aggregates (`min(value)`) and
`_rows`, the rows in the group. A raw table of hundreds of millions of rows is checked this
way without reading it into pandas; a failure names the groups (file, day, metric) and how many
rows each holds. Both may use `$name` parameters the gate passes (as_of, the champion's features, ...);
`{"$PARAMETER": ...}` placeholders in expectation kwargs take the same parameters (GX
evaluates arithmetic such as `previous_row_count * 0.5`; with `previous_row_count` a gate also
gets `chance_row_count`, the fewest rows chance gives around it). Rate thresholds are judged
beyond chance at the rows validated (`flows.quality.gx`): `mostly` and the bounds of a 0/1
column's mean move by what chance gives at `meta.chance_quantile` (default 0.999); an
expectation's `meta.chance: false` keeps them exact. `meta.row_id` names columns
that identify a bad row in the report (e.g. `_source_file`, `feature`). `meta.when: "training"`
runs a marts suite only in a run that trains a model (`flows.quality.gates.validate_marts`).

DataFrames are validated through GX's pandas datasource (its SQL datasource via duckdb-engine
fails every expectation upstream) with result_format SUMMARY.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

SEVERITIES = ("critical", "warning")


EDGES = ("raw", "marts", "drift", "scores")


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


_RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


_SQL_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def load_suite(path: Path) -> dict[str, Any]:
    """Read and check one suite file: JSON, severities, and the meta the gates rely on."""
    try:
        suite: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"expectation suite {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"expectation suite {path} is not valid JSON: {exc}") from exc
    for i, exp in enumerate(suite.get("expectations", [])):
        severity = exp.get("meta", {}).get("severity", "critical")
        if severity not in SEVERITIES:
            raise ValueError(
                f"{path}: expectation {i} ({exp.get('type')}) has meta.severity={severity!r}; "
                "expected 'critical' or 'warning'"
            )
    meta = suite.get("meta", {})
    edge = meta.get("edge")
    if edge is not None and edge not in EDGES:
        raise ValueError(f"{path}: meta.edge={edge!r}; expected one of {', '.join(EDGES)}")
    table = meta.get("table")
    if table is not None and not _RELATION.match(table):
        raise ValueError(f"{path}: meta.table={table!r}; expected 'schema.table'")
    when = meta.get("when")
    if when is not None and when != "training":
        raise ValueError(f"{path}: meta.when={when!r}; expected 'training' or no meta.when")
    group_by = meta.get("group_by", [])
    if not isinstance(group_by, list) or not all(isinstance(c, str) for c in group_by):
        raise ValueError(f"{path}: meta.group_by={group_by!r}; expected a list of column names")
    for name in [*meta.get("computed_columns", {}), *meta.get("row_id", []), *group_by]:
        if not _IDENT.match(name):
            raise ValueError(f"{path}: column name {name!r} in meta is not a plain identifier")
    for name in suite_columns(suite):  # these are quoted into the gate's SQL
        if not _IDENT.match(name):
            raise ValueError(f"{path}: column name {name!r} is not a plain identifier")
    if group_by:
        known = {*group_by, *meta.get("computed_columns", {}), "_rows"}
        loose = [c for c in suite_columns(suite) if c not in known]
        if loose:
            raise ValueError(
                f"{path}: meta.group_by={group_by}: column(s) {loose} are neither grouped nor "
                "computed_columns aggregates; the suite validates one row per group"
            )
    return suite


# Expectations about the table's shape: they see every column of the table, in its order.
TABLE_SHAPE = frozenset(
    {
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_column_count_to_equal",
        "expect_table_column_count_to_be_between",
    }
)


def suite_columns(spec: dict[str, Any], available: list[str] | None = None) -> list[str]:
    """Columns a suite needs, in first-use order: expectation columns, row ids, and columns
    named in row conditions (those only when `available` lists the table's columns). A suite
    with an expectation about the table's shape (`TABLE_SHAPE`) needs every column of
    `available`, in the table's order, first."""
    shape = any(e.get("type") in TABLE_SHAPE for e in spec.get("expectations", []))
    cols: list[str] = list(available) if shape and available is not None else []
    for exp in spec.get("expectations", []):
        kwargs = exp.get("kwargs", {})
        for key in ("column", "column_A", "column_B"):
            if isinstance(kwargs.get(key), str):
                cols.append(kwargs[key])
        cols += [c for c in kwargs.get("column_list", []) if isinstance(c, str)]
        cols += _condition_columns(kwargs.get("row_condition"), available)
    cols += list(spec.get("meta", {}).get("row_id", []))
    return list(dict.fromkeys(cols))


def _condition_columns(condition: Any, available: list[str] | None) -> list[str]:
    """Columns a row_condition uses: GX Condition JSON ({"column": {"name": ...}}, "and"/"or"
    with "conditions"), or a legacy pandas query string (matched against `available`)."""
    if isinstance(condition, dict):
        name = (condition.get("column") or {}).get("name")
        nested = condition.get("conditions") or []
        return [
            *([name] if isinstance(name, str) else []),
            *(c for sub in nested for c in _condition_columns(sub, available)),
        ]
    if isinstance(condition, str) and available is not None:
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", condition))
        return [c for c in available if c in words]
    return []


def suite_query(
    spec: dict[str, Any], available: dict[str, str], extra_where: str | None = None
) -> tuple[str, list[str]]:
    """SQL reading just what a suite needs from `meta.table`, and the `$parameters` it uses.

    `available` maps the table's columns to their DuckDB types; DECIMAL columns are read as
    DOUBLE. Referenced columns the table lacks are left out: GX then reports them as missing.
    With `meta.group_by` the SQL returns one row per group (computed columns are its
    aggregates, `_rows` its row count), ordered so the examples a failure shows are stable.
    """
    meta = spec.get("meta", {})
    table = meta["table"]
    computed: dict[str, str] = meta.get("computed_columns", {})
    group_by: list[str] = [c for c in meta.get("group_by", []) if c in available]
    select = []
    for c in group_by or suite_columns(spec, list(available)):
        if c in available and c not in computed:
            is_decimal = available[c].upper().startswith("DECIMAL")
            select.append(f'cast("{c}" as double) as "{c}"' if is_decimal else f'"{c}"')
    select += [f'({expr}) as "{name}"' for name, expr in computed.items()]
    if group_by:
        select.append('count(*) as "_rows"')
    where = [w for w in (meta.get("where"), extra_where) if w]
    sql = f"select {', '.join(select) or '1 as _row'} from {table}"
    if where:
        sql += " where " + " and ".join(f"({w})" for w in where)
    if group_by:
        cols = ", ".join(f'"{c}"' for c in group_by)
        sql += f" group by {cols} order by {cols}"
    return sql, list(dict.fromkeys(_SQL_PARAM.findall(sql)))
