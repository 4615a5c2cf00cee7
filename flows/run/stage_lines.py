"""One line per finished stage: its name, its seconds and a few words of what it did.

`flows.pipeline.run_stages` logs the line on the `flows.stages` logger as each stage ends: the
run's log file and the Prefect UI keep it, and `expansion run` shows these lines on its
console while the run goes (its other log lines go to the log file only). The words come from
the stage's own result, so they say what the stage did, not what it was asked to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

STAGE_LOGGER = "flows.stages"
log = logging.getLogger(STAGE_LOGGER)


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _load(report: Any) -> str:
    rows = sum((getattr(report, "rows_by_table", None) or {}).values())
    files = len(getattr(report, "loaded", None) or [])
    words = f"{_count(rows, 'row')} loaded from {_count(files, 'file')}"
    quarantined = sum((getattr(report, "quarantined_by_table", None) or {}).values())
    if quarantined:
        words += f", {_count(quarantined, 'row')} quarantined"
    return words if files else "no new extract"


def _freshness(rows: Sequence[Any]) -> str:
    if not rows:
        return "not checked"
    late = [r.source for r in rows if r.status != "pass"]
    if not late:
        return f"{_count(len(rows), 'source')} fresh"
    return (
        f"{len(rows) - len(late)} of {_count(len(rows), 'source')} fresh; late: {', '.join(late)}"
    )


def _gate(results: Sequence[Any]) -> str:
    if not results:
        return "nothing new to check"
    warned = [r.suite for r in results if r.passed and r.warnings]
    words = f"{len(results) - len(warned)} of {_count(len(results), 'suite')} passed"
    return words + (f"; warnings in {', '.join(warned)}" if warned else "")


def _drift(results: Sequence[Any]) -> str:
    if not results:
        return "skipped (no champion to compare with)"
    features = max((r.rows for r in results), default=0)
    warned = sum(len(r.warnings) for r in results)
    words = f"{_count(features, 'feature')} compared with the champion's training rows"
    return words + (f"; {_count(warned, 'warning')}" if warned else "; no drift")


def _dbt(report: Any) -> str:
    if getattr(report, "selection", "all") not in {"all", ""} and not report.models_run:
        return "nothing changed: no model built"
    words = f"{_count(report.models_run, 'model')} built, {_count(report.tests_run, 'test')} run"
    if report.warned:
        words += f", {_count(report.warned, 'warning')}"
    return words + f" ({report.selection})"


def _train(result: Any) -> str:
    """Which model scores (the decision's reasons are in the log file and the model report)."""
    trained, champion = result.trained_version, result.champion_version
    if not trained:
        return f"champion {champion} reused"
    if trained == champion:
        return f"model {trained} trained, now the champion"
    return f"model {trained} trained, not promoted: champion {champion} kept"


def _score(result: Any) -> str:
    words = f"{_count(result.accounts_scored, 'account')} scored with {result.model_version}"
    return words + (f", {_count(result.alerts, 'alert')}" if result.alerts else "")


def _publish(report: Any) -> str:
    if report.history_only:
        return "score history only (the current version stays)"
    return f"{_count(len(report.rows), 'table')} published"


def _sync(reports: Sequence[Any]) -> str:
    if not reports:
        return "no destination"
    sent = sum(r.inserted + r.updated + r.deleted for r in reports)
    failed = sum(r.failed for r in reports)
    words = f"{_count(sent, 'record')} sent to {_count(len(reports), 'destination')}"
    return words + (f", {failed:,} failed" if failed else "")


def _as_of(day: Any) -> str:
    return f"as of {day}" if isinstance(day, date) else ""


WORDS: dict[str, Callable[[Any], str]] = {
    "load": _load,
    "freshness": _freshness,
    "validate_raw": _gate,
    "as_of": _as_of,
    "dbt_build": _dbt,
    "validate_marts": _gate,
    "check_drift": _drift,
    "train": _train,
    "score": _score,
    "validate_scores": _gate,
    "publish": _publish,
    "sync": _sync,
}


def words_for(stage: str, result: Any) -> str:
    """What the stage did, in a few words ("" when there is nothing to say)."""
    describe = WORDS.get(stage)
    if describe is None or result is None:
        return ""
    try:
        return describe(result)
    except Exception:  # a line of progress must never fail a run
        return ""


def stage_done(
    stage: str, seconds: float, result: Any, as_of: date | None = None, backfill: bool = False
) -> None:
    """Log the line of a finished stage (`extra`: stage, seconds, words, as_of, backfill)."""
    words = words_for(stage, result)
    log.info(
        "%s%s done in %.1f s%s",
        f"{as_of} " if backfill and as_of else "",
        stage,
        seconds,
        f": {words}" if words else "",
        extra={
            "stage": stage,
            "seconds": seconds,
            "words": words,
            "as_of": as_of,
            "backfill": backfill,
        },
    )


def date_done(as_of: date, seconds: float, summary: Any) -> None:
    """Log the line of a backfill's date that finished (stage `date`)."""
    model = (getattr(summary, "model", None) or {}).get("champion_version")
    words = f"{_count(getattr(summary, 'accounts_scored', 0) or 0, 'account')} scored"
    words += f" with {model}" if model else ""
    log.info(
        "%s done in %.1f s: %s",
        as_of,
        seconds,
        words,
        extra={
            "stage": "date",
            "seconds": seconds,
            "words": words,
            "as_of": as_of,
            "backfill": True,
        },
    )
