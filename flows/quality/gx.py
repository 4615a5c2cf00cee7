"""Validate a DataFrame against a suite with GX Core's pandas datasource (its SQL datasource
through duckdb-engine fails every expectation upstream), result_format SUMMARY."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from flows.quality.results import ExpectationOutcome, GateResult, jsonable, plain_value
from flows.quality.suites import load_suite, suite_columns

log = logging.getLogger(__name__)


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
