"""Every error the pipeline raises on purpose, and the exit code the CLI gives each.

A scheduler acts on the exit code: 3 bad input (fix the extract or the landing zone), 4 a
data-quality gate stopped the run, 5 another run holds the lock (try later), 6 a source is
stale, 7 a destination did not take every record (`expansion run`: the scores were published;
`expansion sync`: also when a destination could not be reached, or, with --dry-run, failed its
check): see `sync.failed_records`, the records go again next run. Anything else is 1.

Messages that quote extracts (ExtractError and its violations, GateFailed) pass through
`flows.masking.mask_text` when the error is made: whatever shows or stores them later (the
console, the run record, raw._quarantine, Prefect's database) gets the masked, bounded text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from flows.masking import mask_text

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_GATE = 4
EXIT_BUSY = 5
EXIT_STALE = 6
EXIT_PARTIAL = 7  # published, but a destination rejected records or could not be reached

LINE_LIMIT = 1000  # characters of one line of an error message
VALUE_LIMIT = 120  # characters of a value a violation quotes
REASON_LIMIT = 600  # characters of a violation's reason


def masked_message(message: str) -> str:
    """An error message as shown and stored: secrets masked, each line bounded."""
    return mask_text(message, None, line_limit=LINE_LIMIT)


def masked_violation(violation: Any) -> Any:
    """A violation (flows.ingest.readers.Violation) with its value and reason masked and bounded."""
    if not dataclasses.is_dataclass(violation) or isinstance(violation, type):
        return violation
    changes = {
        name: mask_text(getattr(violation, name), limit)
        for name, limit in (("value", VALUE_LIMIT), ("reason", REASON_LIMIT))
        if isinstance(getattr(violation, name, None), str)
    }
    return dataclasses.replace(violation, **changes) if changes else violation


class ExtractError(ValueError):
    """Extracts break the contract (or cannot be read); nothing of the load was kept."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, violations: list[Any] | None = None) -> None:
        super().__init__(masked_message(message))
        # flows.ingest.readers.Violation
        self.violations = [masked_violation(v) for v in violations or []]

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.violations))


class LandingZoneEmpty(ExtractError):
    """The landing zone is missing or holds no file: nothing to run on."""


class GateFailed(RuntimeError):
    """A critical expectation failed: the run stops before the next stage.

    `result` is the first failing suite; `results` every suite the gate ran (for reports);
    both `flows.quality.results.GateResult` (not imported: errors sit below every room).
    """

    exit_code = EXIT_GATE

    def __init__(self, result: Any, results: Sequence[Any] | None = None) -> None:
        self.result = result
        self.results: list[Any] = list(results) if results is not None else [result]
        lines = [f"data-quality gate '{result.suite}' failed on table {result.table}:"]
        lines += [f"  - {f.describe()}" for f in result.critical]
        others = [r.suite for r in self.results if not r.passed and r is not result]
        if others:
            lines.append(f"  (also failed: {', '.join(others)})")
        if result.results_path:
            lines.append(f"  validation results: {result.results_path}")
        if result.page:
            lines.append(f"  Data Docs: {result.page}")
        super().__init__(masked_message("\n".join(lines)))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.result, self.results))


class PipelineBusy(RuntimeError):
    """Another run holds the pipeline lock."""

    exit_code = EXIT_BUSY


class SourceStale(RuntimeError):
    """A source has not delivered within its freshness window (dbt source freshness)."""

    exit_code = EXIT_STALE


class DbtBuildFailed(RuntimeError):
    """`dbt build` failed: a model, a data test or a unit test."""

    exit_code = EXIT_FAILED


class ModelQualityError(RuntimeError):
    """No model good enough to score with."""

    exit_code = EXIT_FAILED


class SyncFailed(RuntimeError):
    """A destination could not be used at all (unreachable, misconfigured); every record of
    that sync was recorded as failed, to go again next run. The publication stands: 7."""

    exit_code = EXIT_PARTIAL


class SecretError(ValueError):
    """A secret folder or file that is not safe to read."""

    exit_code = EXIT_FAILED


class TransientSourceError(RuntimeError):
    """A source could not be reached or read for a reason that may pass (network, lock).

    Tasks retry these with backoff; contract violations are never retried.
    """


class TransientHttpError(RuntimeError):
    """5xx, 429, timeouts, refused connections: worth another attempt."""


def exit_code(exc: BaseException) -> int:
    """The CLI's exit code for an exception."""
    return int(getattr(exc, "exit_code", EXIT_FAILED))
