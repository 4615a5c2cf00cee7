"""Data-quality gates with Great Expectations at the pipeline's edges.

Suites live in `expectations/<table>.json` (GX Core 1.x suite format). Each expectation's
`meta.severity` is `critical` (default: the run stops before the next stage) or `warning` (the
run goes on and the failure is reported). DataFrames are validated through GX's pandas
datasource (its SQL datasource via duckdb-engine fails every expectation upstream).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)


class GateFailed(RuntimeError):
    """A critical expectation failed: the run stops before the next stage."""

    def __init__(self, result: GateResult) -> None:
        self.result = result
        lines = [f"data-quality gate '{result.suite}' failed on table {result.table}:"]
        lines += [f"  - {f.describe()}" for f in result.critical]
        super().__init__("\n".join(lines))


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

    def describe(self) -> str:
        where = f"column {self.column}" if self.column else "table"
        bits = [f"{self.expectation} on {where} of {self.table}"]
        args = {
            k: v for k, v in self.kwargs.items() if k not in {"column", "result_format", "batch_id"}
        }
        if args:
            bits.append(f"expected {args}")
        if self.unexpected_count is not None:
            bits.append(f"{self.unexpected_count} of {self.element_count} rows unexpected")
        if self.examples:
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

    @property
    def critical(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "critical"]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity != "critical"]

    @property
    def passed(self) -> bool:
        return not self.critical

    def markdown(self) -> str:
        head = (
            f"### {self.suite} ({self.table}, {self.rows} rows): "
            f"{'passed' if self.passed else 'FAILED'}, {len(self.outcomes)} expectations, "
            f"{len(self.critical)} critical and {len(self.warnings)} warning failures\n"
        )
        failed = [o for o in self.outcomes if not o.success]
        if not failed:
            return head
        rows = ["| severity | expectation | column | unexpected rows | examples / observed |"]
        rows.append("|---|---|---|---|---|")
        for o in failed:
            seen = o.examples[:5] if o.examples else o.observed
            rows.append(
                f"| {o.severity} | {o.expectation} | {o.column or ''} | "
                f"{o.unexpected_count if o.unexpected_count is not None else ''} | {seen} |"
            )
        return head + "\n" + "\n".join(rows) + "\n"


def load_suite(path: Path) -> dict[str, Any]:
    try:
        suite: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"expectation suite {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"expectation suite {path} is not valid JSON: {exc}") from exc
    for i, exp in enumerate(suite.get("expectations", [])):
        severity = exp.get("meta", {}).get("severity", "critical")
        if severity not in {"critical", "warning"}:
            raise ValueError(
                f"{path}: expectation {i} ({exp.get('type')}) has meta.severity={severity!r}; "
                "expected 'critical' or 'warning'"
            )
    return suite


@cache
def _context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    context.data_sources.add_pandas("frames")
    return context


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


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

    spec = load_suite(suite_path)
    name = spec.get("name", suite_path.stem)
    table = table or spec.get("meta", {}).get("table", name)
    context = _context()
    configs = [
        ExpectationConfiguration(type=e["type"], kwargs=e.get("kwargs", {}), meta=e.get("meta", {}))
        for e in spec.get("expectations", [])
    ]
    suite = ExpectationSuite(name=name, expectations=configs)
    source = context.data_sources.get("frames")
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name)
    try:
        batch_def = asset.get_batch_definition("all")
    except KeyError:
        batch_def = asset.add_batch_definition_whole_dataframe("all")
    batch = batch_def.get_batch(batch_parameters={"dataframe": frame})
    run = batch.validate(
        suite,
        result_format={"result_format": "SUMMARY"},
        expectation_parameters=parameters or {},
    )

    outcomes = []
    for res in run.results:
        cfg = res.expectation_config
        result = res.result or {}
        outcomes.append(
            ExpectationOutcome(
                suite=name,
                table=table,
                expectation=cfg.type,
                column=cfg.kwargs.get("column"),
                severity=(cfg.meta or {}).get("severity", "critical"),
                success=bool(res.success),
                element_count=result.get("element_count"),
                unexpected_count=result.get("unexpected_count"),
                examples=_clean(list(result.get("partial_unexpected_list") or [])),
                observed=_clean(result.get("observed_value")),
                kwargs={k: _clean(v) for k, v in cfg.kwargs.items()},
            )
        )
        if res.exception_info and res.exception_info.get("raised_exception"):
            outcomes[-1].success = False
            outcomes[-1].observed = res.exception_info.get("exception_message")
    gate = GateResult(suite=name, table=table, rows=len(frame), outcomes=outcomes)
    for o in gate.warnings:
        log.warning("expectation warning: %s", o.describe())
    return gate


def enforce(result: GateResult) -> GateResult:
    """Raise GateFailed if any critical expectation failed."""
    if not result.passed:
        raise GateFailed(result)
    return result
