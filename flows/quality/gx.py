"""Validate a DataFrame against a suite with GX Core's pandas datasource (its SQL datasource
through duckdb-engine fails every expectation upstream), result_format SUMMARY."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pandas as pd

from flows.quality.results import ExpectationOutcome, GateResult, jsonable, plain_value
from flows.quality.scope import Scope, row_local
from flows.quality.suites import TABLE_SHAPE, load_suite, suite_columns

log = logging.getLogger(__name__)

CHANCE_QUANTILE = 0.999  # rate thresholds are judged beyond this quantile of chance


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
    """Three GX 1.24 pandas-engine costs that buy nothing here, measured on 1M rows x 20
    expectations (bench/gx_speed.py): the batch fingerprint hashes the whole frame twice per
    validation (a batch marker only); the mean/stdev/sum metrics look for `decimal.Decimal`
    in Python, element by element, even in float64 columns; and the row ids of unexpected
    rows are looked up cell by cell for every such row, then all but the first
    `partial_unexpected_count` thrown away (`_first_unexpected_rows`)."""
    import numpy as np
    from great_expectations import util as gx_util
    from great_expectations.execution_engine import pandas_execution_engine
    from great_expectations.expectations.metrics.map_metric_provider import (
        map_condition_auxilliary_methods as map_conditions,
    )

    pandas_execution_engine.HASH_THRESHOLD = 0
    original = gx_util.does_ndarray_contain_decimal_dtype
    if getattr(original, "_expansion_fast", False):
        return
    map_conditions.compute_unexpected_pandas_indices = _first_unexpected_rows(
        map_conditions.compute_unexpected_pandas_indices
    )

    def contains_decimal(data: Any) -> bool:
        if isinstance(data, np.ndarray) and data.dtype.kind != "O":
            return False  # a numeric, bool or datetime array cannot hold Decimal objects
        return bool(original(data))

    contains_decimal._expansion_fast = True  # type: ignore[attr-defined]
    gx_util.does_ndarray_contain_decimal_dtype = contains_decimal  # type: ignore[assignment]


def _first_unexpected_rows(compute: Callable[..., Any]) -> Callable[..., Any]:
    """GX's `compute_unexpected_pandas_indices`, on the first `partial_unexpected_count`
    unexpected rows only, unless the result format is COMPLETE. Its one caller
    (`_pandas_map_condition_index`) keeps just that prefix of the list, in row order, so the
    result is the same; an expectation with `mostly` that lets 35k null rows of 400k pass
    cost 1.5 s of lookups before (account_metric_snapshots at 100k accounts)."""

    def first_rows(
        *, domain_records_df: pd.DataFrame, result_format: dict[str, Any], **kw: Any
    ) -> Any:
        if result_format.get("result_format") != "COMPLETE":
            keep = int(result_format.get("partial_unexpected_count", 20))
            domain_records_df = domain_records_df.head(keep)
        return compute(domain_records_df=domain_records_df, result_format=result_format, **kw)

    return first_rows


def validate_frame(
    frame: pd.DataFrame,
    suite_path: Path,
    table: str | None = None,
    parameters: dict[str, Any] | None = None,
    row_id: list[str] | None = None,
    whole: pd.DataFrame | None = None,
    scope: Scope | None = None,
) -> GateResult:
    """Validate a DataFrame against one suite file and return every expectation's outcome.

    `parameters` fill `{"$PARAMETER": name}` placeholders in the suite (e.g. the run's as_of);
    `row_id` adds columns that name a bad row to the suite's `meta.row_id`.

    With `scope`, `frame` holds only the scope's rows (those a build rewrote) and `whole`
    the whole table, in the columns of the suite's expectations that are not `row_local`:
    those (row counts, aggregates) run on `whole`, the rest on `frame`.
    """
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    started = time.perf_counter()
    parameters = with_chance_row_count(parameters or {})
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
    row_id = [
        c for c in [*meta.get("row_id", []), *(row_id or []), *group_by] if c in frame.columns
    ]
    if group_by and "_rows" in frame.columns:
        row_id.append("_rows")
    row_id = list(dict.fromkeys(row_id))
    if row_id:
        result_format["unexpected_index_column_names"] = row_id

    # GX's pandas engine filters the whole frame for each expectation, so a suite costs
    # rows x columns x expectations; each expectation sees only the columns it names (and
    # the row ids) instead: 29 expectations on 300k snapshot rows, 12 s -> a few.
    runs = []
    quantile = float(meta.get("chance_quantile", CHANCE_QUANTILE))
    expectations = list(enumerate(spec.get("expectations", [])))
    parts = [(frame, expectations)]
    if scope is not None and whole is not None:
        local = [(i, e) for i, e in expectations if row_local(e, scope.key)]
        parts = [(frame, local), (whole, [m for m in expectations if m not in local])]
    chance = {i: _chance_kwargs(e, rows, quantile) for rows, members in parts for i, e in members}
    groups = [
        (rows, columns, members)
        for rows, part in parts
        for columns, members in _by_columns(part, rows, row_id)
    ]
    for rows, columns, members in groups:
        configs = [
            ExpectationConfiguration(type=e["type"], kwargs=chance[i][0], meta=e.get("meta", {}))
            for i, e in members
        ]
        batch = batch_def.get_batch(
            batch_parameters={"dataframe": rows if columns is None else rows[list(columns)]}
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
    for i, res in ordered:
        cfg = res.expectation_config
        result = res.result or {}
        column = cfg.kwargs.get("column")
        example_rows = [
            {str(k): plain_value(v) for k, v in row.items()}
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
                examples=plain_value(list(result.get("partial_unexpected_list") or [])),
                observed=plain_value(result.get("observed_value")),
                kwargs={k: plain_value(v) for k, v in cfg.kwargs.items()},
                example_rows=example_rows,
                unit=unit,
            )
        )
        outcomes[-1].kwargs |= chance[i][1]
        if res.exception_info and res.exception_info.get("raised_exception"):
            outcomes[-1].success = False
            outcomes[-1].observed = res.exception_info.get("exception_message")
    gate = GateResult(
        suite=name,
        table=table,
        rows=int(frame["_rows"].sum())
        if group_by and "_rows" in frame
        else len(whole if scope is not None and whole is not None else frame),
        scope=None if scope is None else scope.describe(len(frame)),
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


def chance_row_count(previous: int, quantile: float = CHANCE_QUANTILE) -> float:
    """The fewest rows chance gives around `previous` (previous - z x sqrt(previous), counts
    taken as Poisson). The shipped marts suites fail a row count below the smaller of half the
    previous run's and this: 3 rows after 8 is chance, 140 after 300 is a collapse."""
    z = NormalDist().inv_cdf(quantile)
    return max(0.0, previous - z * math.sqrt(previous))


def with_chance_row_count(parameters: dict[str, Any]) -> dict[str, Any]:
    """`parameters` plus `chance_row_count` (of `previous_row_count`) for the suites."""
    if "previous_row_count" not in parameters or "chance_row_count" in parameters:
        return parameters
    previous = int(parameters["previous_row_count"] or 0)
    return {**parameters, "chance_row_count": round(chance_row_count(previous), 3)}


def _chance_kwargs(
    expectation: dict[str, Any], frame: pd.DataFrame, quantile: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An expectation's kwargs with its rate thresholds moved by what chance gives at this
    many rows, and what was moved (shown with the outcome).

    A share of rows is judged beyond chance: `mostly` (the share of rows that must pass) fails
    only below mostly - z x sqrt(mostly (1 - mostly) / n), and a bound on the mean of a 0/1
    column (a rate, such as a label's base rate) fails only beyond bound -/+ z x
    sqrt(bound (1 - bound) / n), z the normal `quantile` (99.9%: 3.09), n the rows (non-null
    values of the column). On 20 rows `mostly: 0.9` accepts 14 of 20, on 100,000 rows 89,700.
    `meta.chance: false` on an expectation keeps its thresholds exact."""
    kwargs = dict(expectation.get("kwargs", {}))
    if expectation.get("meta", {}).get("chance") is False:
        return kwargs, {}
    column = kwargs.get("column")
    values = frame[column] if isinstance(column, str) and column in frame.columns else None
    every_row = values is None or expectation.get("type") in _OVER_EVERY_ROW
    rows = len(frame) if every_row or values is None else int(values.notna().sum())
    if rows == 0:
        return kwargs, {}
    z = NormalDist().inv_cdf(quantile)
    shown: dict[str, Any] = {}
    mostly = kwargs.get("mostly")
    if isinstance(mostly, int | float) and 0 < mostly < 1:
        kwargs["mostly"] = max(0.0, mostly - z * math.sqrt(mostly * (1 - mostly) / rows))
        shown["mostly"] = _chance_note(mostly, kwargs["mostly"], rows)
    if expectation.get("type") == "expect_column_mean_to_be_between" and _is_binary(values):
        for key, sign in (("min_value", -1), ("max_value", 1)):
            bound = kwargs.get(key)
            if isinstance(bound, int | float) and 0 < bound < 1:
                kwargs[key] = min(
                    1.0, max(0.0, bound + sign * z * math.sqrt(bound * (1 - bound) / rows))
                )
                shown[key] = _chance_note(bound, kwargs[key], rows)
    return kwargs, shown


_OVER_EVERY_ROW = ("expect_column_values_to_not_be_null", "expect_column_values_to_be_null")


def _chance_note(configured: float, used: float, rows: int) -> str:
    return f"{used:.4g} ({configured:g} less what chance gives at {rows} rows)"


def _is_binary(values: pd.Series | None) -> bool:
    if values is None:
        return False
    known = pd.unique(values.dropna())
    return len(known) > 0 and all(v in (0, 1, True, False) for v in known)


def _by_columns(
    expectations: list[tuple[int, dict[str, Any]]], frame: pd.DataFrame, row_id: list[str]
) -> list[tuple[tuple[str, ...] | None, list[tuple[int, dict[str, Any]]]]]:
    """Expectations (with their places in the suite) grouped by the frame columns they read
    (plus the row ids), in suite order; None = the whole frame (expectations about the
    table's columns)."""
    groups: dict[tuple[str, ...] | None, list[tuple[int, dict[str, Any]]]] = {}
    available = list(frame.columns)
    for i, e in expectations:
        if e.get("type") in TABLE_SHAPE:
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
