"""Gate results: what each expectation found, the critical/warning verdict, the results files
and the markdown a gate reports."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from flows.errors import GateFailed

_HIDDEN_KWARGS = {"column", "result_format", "batch_id"}
DRIFT_FEATURES_SHOWN = 5  # features named in a drift warning; the suite's results hold all


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
        drift = self._describe_drift()
        if drift:
            return drift
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

    def _describe_drift(self) -> str:
        """A drift suite's bar (flows/quality/drift.py: one row per feature, its PSI and the
        PSI chance reaches at these row counts) as one line per feature it caught, e.g.
        `tenure_days: PSI 0.37, chance 0.21 (warn > 0.1 beyond chance), against training date
        2026-05-31; moved 0-30 12% -> 40%; accounts a, b`: the figures in words, then the
        bins that moved and accounts in them; "" for any other expectation."""
        rows = [r for r in self.example_rows if isinstance(r, dict) and "feature" in r]
        if (
            not rows
            or "psi" not in rows[0]
            or not isinstance(self.kwargs.get("max_value"), int | float)
        ):
            return ""  # not a drift bar, or a bound given as a run parameter: said as usual
        column = self.kwargs.get("column")
        judged = "beyond chance" if column == "psi_beyond_chance" else f"on {column}"
        bar = f"{'fail' if self.severity == 'critical' else 'warn'} > {self.kwargs['max_value']:g}"
        lines = []
        for r in rows[:DRIFT_FEATURES_SHOWN]:
            line = (
                f"{r['feature']}: PSI {_figure(r.get('psi'))}, chance "
                f"{_figure(r.get('chance_psi'))} ({bar} {judged})"
            )
            if r.get("reference_date"):
                line += f", against training date {r['reference_date']}"
                if r.get("shift_days"):
                    line += f" moved by {r['shift_days']} days"
            if r.get("moved_bins"):
                line += f"; moved {r['moved_bins']}"
            if r.get("example_accounts"):
                line += f"; accounts {r['example_accounts']}"
            lines.append(line)
        more = max(self.unexpected_count or 0, len(rows)) - len(lines)
        return "\n    ".join(lines) + (f"\n    and {more} more" if more > 0 else "")


def _figure(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "n/a"


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
    # the rows checked row by row when not all `rows` were (a daily marts gate: the dates
    # the build rewrote; flows/quality/scope.py), in words; None: every row
    scope: str | None = None
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
            f"### {self.suite} ({self.table}, {self.rows} rows"
            f"{'; ' + self.scope if self.scope else ''}): "
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
            "scope": self.scope,
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


def plain_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list | tuple):
        return [plain_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
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
    return json.loads(json.dumps(plain_value(value), default=str))


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
                "scope": r.scope,
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
