"""Data-quality gates with Great Expectations at the pipeline's edges.

Suites live in `expectations/<name>.json` (GX Core 1.x suite format) with `meta.edge`
(raw | marts | drift | scores) and `meta.table`. Each expectation's `meta.severity` is
`critical` (the run stops before the next stage) or `warning` (the run goes on and the failure is
reported): severity lives in the suite, never in code.

What a gate reads is described by its suite, so the gate code stays generic (`suite_query`):
only the columns the suite references are read from DuckDB, plus `meta.computed_columns`
(name -> SQL expression, e.g. the MRR reconciliation difference) and an optional `meta.where`.
With `meta.group_by` (columns) a suite validates a profile DuckDB computes instead of the rows:
one row per group, the group columns, `computed_columns` as aggregates (`min(value)`) and
`_rows`, the rows in the group. A raw table of hundreds of millions of rows is checked this
way without reading it into pandas; a failure names the groups (file, day, metric) and how many
rows each holds. Both may use `$name` parameters the gate passes (as_of, the champion's features, ...);
`{"$PARAMETER": ...}` placeholders in expectation kwargs take the same parameters (GX
evaluates arithmetic such as `previous_row_count * 0.5`). `meta.row_id` names columns
that identify a bad row in the report (e.g. `_source_file`, `feature`). `meta.when: "training"`
runs a marts suite only in a run that trains a model (`flows.stages.validate_marts`).

DataFrames are validated through GX's pandas datasource (its SQL datasource via duckdb-engine
fails every expectation upstream) with result_format SUMMARY.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from flows.errors import GateFailed

log = logging.getLogger(__name__)

SEVERITIES = ("critical", "warning")
EDGES = ("raw", "marts", "drift", "scores")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
_SQL_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_HIDDEN_KWARGS = {"column", "result_format", "batch_id"}


@dataclass
class ExpectationOutcome:
    suite: str
    table: str
    expectation: str
    column: str | None
    severity: str
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    examples: list[Any] = field(default_factory=list)
    observed: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    example_rows: list[dict[str, Any]] = field(default_factory=list)
    unit: str = "rows"  # what element_count counts: rows, or groups of a profiled suite

    @property
    def where(self) -> str:
        if self.column:
            return f"column {self.column}"
        columns = self.kwargs.get("column_list") or [
            self.kwargs[k] for k in ("column_A", "column_B") if k in self.kwargs
        ]
        return f"columns {', '.join(map(str, columns))}" if columns else "table"

    @property
    def expected(self) -> dict[str, Any]:
        return {k: v for k, v in self.kwargs.items() if k not in _HIDDEN_KWARGS}

    def describe(self) -> str:
        bits = [f"{self.expectation} on {self.where} of {self.table}"]
        if self.expected:
            bits.append(f"expected {self.expected}")
        if self.unexpected_count is not None:
            bits.append(f"{self.unexpected_count} of {self.element_count} {self.unit} unexpected")
        if self.example_rows:
            bits.append(f"e.g. {self.example_rows[:5]}")
        elif self.examples:
            bits.append(f"e.g. {self.examples[:5]}")
        if self.observed is not None:
            bits.append(f"observed {self.observed}")
        return ", ".join(bits)


@dataclass
class GateResult:
    suite: str
    table: str
    rows: int
    outcomes: list[ExpectationOutcome]
    edge: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    validated_at: str = ""
    results_path: str | None = None  # <home>/quality/<run_id>/<suite>.json
    page: str | None = None  # this suite run's Data Docs page
    data_docs: str | None = None  # <home>/quality/data_docs/index.html
    preview: list[dict[str, Any]] = field(default_factory=list, repr=False)  # small frames
    gx_result: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def critical(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "critical"]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity != "critical"]

    @property
    def passed(self) -> bool:
        return not self.critical

    @property
    def status(self) -> str:
        if not self.passed:
            return "failed"
        return "passed with warnings" if self.warnings else "passed"

    def markdown(self) -> str:
        head = (
            f"### {self.suite} ({self.table}, {self.rows} rows): "
            f"{'passed' if self.passed else 'FAILED'}, {len(self.outcomes)} expectations, "
            f"{len(self.critical)} critical and {len(self.warnings)} warning failures\n"
        )
        if self.page:
            head += f"\nData Docs: `{self.page}`\n"
        failed = [o for o in self.outcomes if not o.success]
        if not failed:
            return head
        rows = ["| severity | expectation | column | unexpected | examples / observed |"]
        rows.append("|---|---|---|---|---|")
        for o in failed:
            seen = o.example_rows[:5] or o.examples[:5] or o.observed
            rows.append(
                f"| {o.severity} | {o.expectation} | {o.where.removeprefix('column ')} | "
                f"{_count(o)} | {_md(seen)} |"
            )
        return head + "\n" + "\n".join(rows) + "\n"

    def record(self) -> dict[str, Any]:
        """What the run summary keeps of this suite run."""
        return {
            "suite": self.suite,
            "table": self.table,
            "edge": self.edge,
            "rows": self.rows,
            "passed": self.passed,
            "status": self.status,
            "seconds": self.seconds,
            "critical": [o.describe() for o in self.critical],
            "warnings": [o.describe() for o in self.warnings],
            "results_path": self.results_path,
            "page": self.page,
            "data_docs": self.data_docs,
            "markdown": self.markdown(),
        }


def _count(o: ExpectationOutcome) -> str:
    if o.unexpected_count is None:
        return ""
    unit = "" if o.unit == "rows" else f" {o.unit}"
    return f"{o.unexpected_count} of {o.element_count}{unit}"


def _md(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


# --- suites --------------------------------------------------------------------------------


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


def suite_columns(spec: dict[str, Any], available: list[str] | None = None) -> list[str]:
    """Columns a suite needs, in first-use order: expectation columns, row ids, and columns
    named in row conditions (those only when `available` lists the table's columns)."""
    cols: list[str] = []
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


# --- validation ----------------------------------------------------------------------------


@cache
def _context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    _speed_up_gx()
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    context.data_sources.add_pandas("frames")
    return context


def _speed_up_gx() -> None:
    """Two GX 1.24 pandas-engine costs that buy nothing here, measured on 1M rows x 20
    expectations (bench/gx_speed.py): the batch fingerprint hashes the whole frame twice per
    validation (a batch marker only), and the mean/stdev/sum metrics look for
    `decimal.Decimal` in Python, element by element, even in float64 columns."""
    import numpy as np
    from great_expectations import util as gx_util
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0
    original = gx_util.does_ndarray_contain_decimal_dtype
    if getattr(original, "_expansion_fast", False):
        return

    def contains_decimal(data: Any) -> bool:
        if isinstance(data, np.ndarray) and data.dtype.kind != "O":
            return False  # a numeric, bool or datetime array cannot hold Decimal objects
        return bool(original(data))

    contains_decimal._expansion_fast = True  # type: ignore[attr-defined]
    gx_util.does_ndarray_contain_decimal_dtype = contains_decimal  # type: ignore[assignment]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            return value.item()  # numpy scalars
        except (ValueError, AttributeError):
            return str(value)
    return value


def jsonable(value: Any) -> Any:
    """A JSON-safe copy (dates as ISO strings, NaN as null, numpy scalars as numbers)."""
    return json.loads(json.dumps(_clean(value), default=str))


def validate_frame(
    frame: pd.DataFrame,
    suite_path: Path,
    table: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> GateResult:
    """Validate a DataFrame against one suite file and return every expectation's outcome.

    `parameters` fill `{"$PARAMETER": name}` placeholders in the suite (e.g. the run's as_of).
    """
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    started = time.perf_counter()
    spec = load_suite(suite_path)
    meta = spec.get("meta", {})
    name = spec.get("name", suite_path.stem)
    table = table or meta.get("table", name)
    context = _context()
    source = context.data_sources.get("frames")
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name)
    try:
        batch_def = asset.get_batch_definition("all")
    except KeyError:
        batch_def = asset.add_batch_definition_whole_dataframe("all")
    result_format: dict[str, Any] = {"result_format": "SUMMARY"}
    group_by = [c for c in meta.get("group_by", []) if c in frame.columns]
    unit = f"groups of ({', '.join(group_by)})" if group_by else "rows"
    row_id = [c for c in [*meta.get("row_id", []), *group_by] if c in frame.columns]
    if group_by and "_rows" in frame.columns:
        row_id.append("_rows")
    row_id = list(dict.fromkeys(row_id))
    if row_id:
        result_format["unexpected_index_column_names"] = row_id

    # GX's pandas engine filters the whole frame for each expectation, so a suite costs
    # rows x columns x expectations; each expectation sees only the columns it names (and
    # the row ids) instead: 29 expectations on 300k snapshot rows, 12 s -> a few.
    runs = []
    for columns, members in _by_columns(spec.get("expectations", []), frame, row_id):
        configs = [
            ExpectationConfiguration(
                type=e["type"], kwargs=e.get("kwargs", {}), meta=e.get("meta", {})
            )
            for _, e in members
        ]
        batch = batch_def.get_batch(
            batch_parameters={"dataframe": frame if columns is None else frame[list(columns)]}
        )
        run = batch.validate(
            ExpectationSuite(name=name, expectations=configs),
            result_format=result_format,
            expectation_parameters=parameters or {},
        )
        runs.append((run, [i for i, _ in members]))
    ordered = sorted(
        ((i, res) for run, idx in runs for i, res in zip(idx, run.results, strict=True)),
        key=lambda pair: pair[0],
    )

    outcomes = []
    for _, res in ordered:
        cfg = res.expectation_config
        result = res.result or {}
        column = cfg.kwargs.get("column")
        example_rows = [
            {str(k): _clean(v) for k, v in row.items()}
            for row in (result.get("partial_unexpected_index_list") or [])
            if isinstance(row, dict)
        ]
        outcomes.append(
            ExpectationOutcome(
                suite=name,
                table=table,
                expectation=cfg.type,
                column=column,
                severity=(cfg.meta or {}).get("severity", "critical"),
                success=bool(res.success),
                element_count=result.get("element_count"),
                unexpected_count=result.get("unexpected_count"),
                examples=_clean(list(result.get("partial_unexpected_list") or [])),
                observed=_clean(result.get("observed_value")),
                kwargs={k: _clean(v) for k, v in cfg.kwargs.items()},
                example_rows=example_rows,
                unit=unit,
            )
        )
        if res.exception_info and res.exception_info.get("raised_exception"):
            outcomes[-1].success = False
            outcomes[-1].observed = res.exception_info.get("exception_message")
    gate = GateResult(
        suite=name,
        table=table,
        rows=int(frame["_rows"].sum()) if group_by and "_rows" in frame else len(frame),
        outcomes=outcomes,
        edge=meta.get("edge"),
        parameters=jsonable(parameters or {}),
        seconds=round(time.perf_counter() - started, 3),
        validated_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        gx_result=_merged_result([run for run, _ in runs], [res for _, res in ordered]),
    )
    for o in gate.warnings:
        log.warning("expectation warning: %s", o.describe())
    return gate


_WHOLE_TABLE = ("expect_table_column",)  # expectations about the set of columns


def _by_columns(
    expectations: list[dict[str, Any]], frame: pd.DataFrame, row_id: list[str]
) -> list[tuple[tuple[str, ...] | None, list[tuple[int, dict[str, Any]]]]]:
    """Expectations grouped by the frame columns they read (plus the row ids), in suite
    order; None = the whole frame (expectations about the table's columns)."""
    groups: dict[tuple[str, ...] | None, list[tuple[int, dict[str, Any]]]] = {}
    available = list(frame.columns)
    for i, e in enumerate(expectations):
        if str(e.get("type", "")).startswith(_WHOLE_TABLE):
            key: tuple[str, ...] | None = None
        else:
            needed = suite_columns({"expectations": [e]}, available)
            key = tuple(c for c in dict.fromkeys([*needed, *row_id]) if c in frame.columns)
            if not key:
                key = tuple(available[:1])  # row counts: any one column keeps the rows
        groups.setdefault(key, []).append((i, e))
    return list(groups.items())


def _merged_result(runs: list[Any], results: list[Any]) -> dict[str, Any]:
    """One GX suite validation result (JSON) from the runs of a suite's column groups."""
    if not runs:
        return {}
    payload: dict[str, Any] = jsonable(runs[0].to_json_dict())
    payload["results"] = [jsonable(r.to_json_dict()) for r in results]
    passed = sum(1 for r in results if r.success)
    payload["success"] = passed == len(results)
    payload["statistics"] = {
        "evaluated_expectations": len(results),
        "successful_expectations": passed,
        "unsuccessful_expectations": len(results) - passed,
        "success_percent": 100.0 * passed / len(results) if results else None,
    }
    return payload


def enforce(result: GateResult) -> GateResult:
    """Raise GateFailed if any critical expectation failed."""
    if not result.passed:
        raise GateFailed(result)
    return result


def enforce_all(results: list[GateResult]) -> list[GateResult]:
    """Raise GateFailed (carrying every result) if any suite has a critical failure."""
    for r in results:
        if not r.passed:
            raise GateFailed(r, results)
    return results


# --- results on disk and in the run's reports ----------------------------------------------


def write_results(results: list[GateResult], run_dir: Path, run_id: str) -> list[Path]:
    """One GX validation-result JSON per suite under `<home>/quality/<run_id>/`.

    The file is GX's own `ExpectationSuiteValidationResult` JSON; `meta.expansion` adds the
    run, table, edge, parameters and the severity-aware status."""
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in results:
        payload = dict(r.gx_result)
        payload["meta"] = {
            **payload.get("meta", {}),
            "expansion": {
                "run_id": run_id,
                "suite": r.suite,
                "table": r.table,
                "edge": r.edge,
                "rows": r.rows,
                "passed": r.passed,
                "status": r.status,
                "critical_failures": len(r.critical),
                "warning_failures": len(r.warnings),
                "validated_at": r.validated_at,
                "seconds": r.seconds,
                "parameters": r.parameters,
                "preview": r.preview,
            },
        }
        path = run_dir / f"{r.suite}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=str))
        tmp.replace(path)
        r.results_path = str(path)
        paths.append(path)
    return paths


def gate_markdown(edge: str, results: list[GateResult], note: str | None = None) -> str:
    """The Prefect artifact for one gate: every suite, its failures and example bad values."""
    if not results:
        return f"## {edge} gate\n\n{note or 'no suite ran'}\n"
    failed = any(not r.passed for r in results)
    warned = sum(len(r.warnings) for r in results)
    lines = [
        f"## {edge} gate: {'FAILED' if failed else 'passed'}"
        + (f" ({warned} warnings)" if warned else ""),
        "",
        "| suite | table | rows | expectations | critical failures | warnings | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.suite} | {r.table} | {r.rows} | {len(r.outcomes)} | {len(r.critical)} | "
        f"{len(r.warnings)} | {r.seconds:.2f} |"
        for r in results
    ]
    for r in results:
        if r.critical or r.warnings:
            lines += ["", r.markdown()]
    docs = next((r.data_docs for r in results if r.data_docs), None)
    if docs:
        lines += ["", f"Data Docs: `{docs}`"]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def outcome_rows(results: list[GateResult]) -> list[dict[str, Any]]:
    """One row per expectation for a Prefect table artifact."""
    return [
        {
            "suite": o.suite,
            "table": o.table,
            "expectation": o.expectation,
            "column": o.where.removeprefix("column "),
            "severity": o.severity,
            "success": o.success,
            "rows": r.rows,
            "unexpected": o.unexpected_count,
            "examples": _md(o.example_rows[:3] or o.examples[:3] or o.observed or ""),
        }
        for r in results
        for o in r.outcomes
    ]
