"""The expansion pipeline: one parent Prefect flow, a task or subflow per stage.

extract -> load raw -> validate raw -> dbt build -> validate marts -> train (when needed)
-> score -> validate scores -> publish -> reverse-ETL sync

Stages hand each other table names and small reports, never DataFrames: every stage reads
what it needs from the private warehouse, so nothing large is pickled between tasks.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff

from flows import stages
from flows.errors import GateFailed
from flows.faults import crash_point
from flows.settings import Settings, get_settings
from flows.validate import gate_markdown, outcome_rows

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    run_id: str
    as_of: str | None = None
    status: str = "running"
    stages: dict[str, float] = field(default_factory=dict)
    rows_loaded: dict[str, int] = field(default_factory=dict)
    rows_quarantined: dict[str, int] = field(default_factory=dict)
    freshness: list[dict[str, Any]] = field(default_factory=list)
    files_loaded: int = 0
    files_skipped: int = 0
    dbt: dict[str, Any] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    accounts_scored: int = 0
    alerts: int = 0
    report: str | None = None
    top_accounts: list[dict[str, Any]] = field(default_factory=list)
    published: dict[str, Any] = field(default_factory=dict)
    synced: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def markdown(self) -> str:
        lines = [f"# Expansion pipeline run `{self.run_id}`", ""]
        lines.append(f"**Status:** {self.status}  **as_of:** {self.as_of}")
        if self.error:
            lines += ["", "```", self.error, "```"]
        lines += ["", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in self.stages.items()]
        if self.rows_loaded or self.rows_quarantined:
            lines += ["", "| table | rows loaded | rows quarantined |", "|---|---|---|"]
            for k in sorted(set(self.rows_loaded) | set(self.rows_quarantined)):
                lines.append(
                    f"| {k} | {self.rows_loaded.get(k, 0)} | {self.rows_quarantined.get(k, 0)} |"
                )
        stale = [f for f in self.freshness if f["status"] != "pass"]
        if stale:
            lines += ["", "| source | freshness | hours since last load |", "|---|---|---|"]
            lines += [f"| {f['source']} | {f['status']} | {f['age_hours']} |" for f in stale]
        if self.dbt:
            lines += ["", f"dbt: {self.dbt}"]
        for g in self.gates:
            lines += ["", g["markdown"]]
        if self.model:
            lines += ["", f"model: {json.dumps(self.model, default=str)}"]
        lines += ["", f"accounts scored: {self.accounts_scored}"]
        lines.append(f"alerts on change: {self.alerts}")
        for s in self.synced:
            lines.append(
                f"- sync {s['name']} ({s['status']}): {s['inserted']} inserted, "
                f"{s['updated']} updated, {s['deleted']} deleted, {s['unchanged']} unchanged, "
                f"{s['failed']} failed"
            )
        return "\n".join(lines)


@contextmanager
def _timed(summary: RunSummary, stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        summary.stages[stage] = round(time.perf_counter() - start, 2)


# --- tasks: thin wrappers that name the stage, time it and log it ---------------------------


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may pass (a source out of reach, a locked file), never bad data."""
    import duckdb

    from flows.errors import TransientSourceError

    return isinstance(state.data, TransientSourceError | duckdb.IOException)


@task(
    name="load_raw",
    cache_policy=NONE,
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_condition_fn=_transient,
)
def load_raw(settings: Settings, run_id: str) -> stages.LoadReport:
    return stages.load_raw(settings, run_id)


@task(name="check_source_freshness", cache_policy=NONE)
def check_source_freshness(settings: Settings) -> list[dict[str, Any]]:
    return stages.check_freshness(settings)


# --- gates: a task per gate; each publishes a markdown and a table artifact ---------------


def _gate_artifacts(edge: str, results: list[stages.GateResult], note: str | None) -> None:
    try:
        create_markdown_artifact(
            key=f"gate-{edge}",
            markdown=gate_markdown(edge, results, note),
            description=f"{edge} data-quality gate",
        )
        if results:
            create_table_artifact(
                key=f"gate-{edge}-expectations",
                table=outcome_rows(results),
                description=f"{edge} gate: every expectation, its severity and outcome",
            )
    except Exception as exc:  # an artifact must never hide the gate's own outcome
        get_run_logger().warning("could not write the %s gate artifacts: %s", edge, exc)


def _run_gate(
    edge: str, check: Callable[[], list[stages.GateResult]], note: str | None = None
) -> list[stages.GateResult]:
    try:
        results = check()
    except GateFailed as exc:
        _gate_artifacts(edge, exc.results, None)
        raise
    _gate_artifacts(edge, results, None if results else note)
    return results


@task(name="validate_raw", cache_policy=NONE)
def validate_raw(settings: Settings, run_id: str) -> list[stages.GateResult]:
    return _run_gate(
        "raw", lambda: stages.validate_raw(settings, run_id), "no raw rows loaded by this run"
    )


@flow(name="run_dbt_build", log_prints=True)
def run_dbt_build(settings: Settings, as_of: date) -> stages.DbtReport:
    return stages.run_dbt_build(settings, as_of)


@task(name="validate_marts", cache_policy=NONE)
def validate_marts(
    settings: Settings, as_of: date, run_id: str, training: bool
) -> list[stages.GateResult]:
    return _run_gate("marts", lambda: stages.validate_marts(settings, as_of, run_id, training))


@task(name="check_drift", cache_policy=NONE)
def check_drift(settings: Settings, as_of: date, run_id: str) -> list[stages.GateResult]:
    return _run_gate(
        "drift",
        lambda: stages.check_drift(settings, as_of, run_id),
        "skipped: no champion model to compare with",
    )


@task(name="train_model", cache_policy=NONE)
def train_model(settings: Settings, as_of: date, force: bool) -> dict[str, Any]:
    return stages.train_model(settings, as_of, force=force)


@task(name="train_as_of", cache_policy=NONE)
def train_as_of(settings: Settings, as_of: date) -> str:
    return stages.train_as_of(settings, as_of)


@task(name="score_accounts", cache_policy=NONE)
def score_accounts(
    settings: Settings, as_of: date, run_id: str, model_version: str | None, backfill: bool
) -> dict[str, Any]:
    return stages.score_accounts(
        settings, as_of, run_id, model_version=model_version, backfill=backfill
    )


@task(name="validate_scores", cache_policy=NONE)
def validate_scores(
    settings: Settings, as_of: date, run_id: str, model_version: str
) -> list[stages.GateResult]:
    return _run_gate(
        "scores", lambda: stages.validate_scores(settings, as_of, run_id, model_version)
    )


@task(name="publish_scores", cache_policy=NONE)
def publish_scores(
    settings: Settings, run_id: str, as_of: date, model_version: str, history_only: bool
) -> stages.PublishReport:
    return stages.publish(settings, run_id, as_of, model_version, history_only=history_only)


@task(name="sync_destinations", cache_policy=NONE)
def sync_destinations(settings: Settings, run_id: str) -> list[stages.SyncReport]:
    return stages.sync(settings, run_id)


def _gates(summary: RunSummary, results: list[stages.GateResult]) -> None:
    summary.gates += [r.record() for r in results]


def _gate(summary: RunSummary, name: str, check: Callable[[], list[stages.GateResult]]) -> None:
    """Run a gate as a timed step; its results reach the summary whether it passes or not."""
    try:
        results = _step(summary, name, check)
    except GateFailed as exc:
        _gates(summary, exc.results)
        raise
    _gates(summary, results)


def _step(summary: RunSummary, name: str, fn: Callable[[], T]) -> T:
    with _timed(summary, name):
        return fn()


@flow(name="expansion-pipeline", log_prints=True)
def expansion_pipeline(
    as_of: date | None = None,
    retrain: bool = False,
    full_refresh: bool = False,
    backfill: bool = False,
) -> dict[str, Any]:
    """Run every stage once for `as_of` (default: the latest data in the landing zone).

    `backfill=True` (with a past as_of) scores that date with a model trained only on what was
    known then, adds the scores to the history, leaves BI's current scores as they are and
    sends nothing to destinations.
    """
    if backfill and as_of is None:
        raise ValueError("a backfill needs an as_of date")
    logger = get_run_logger()
    settings = get_settings(as_of=as_of, full_refresh=full_refresh or None)
    run_id = str(flow_run.get_id() or uuid.uuid4())
    summary = RunSummary(run_id=run_id)
    started = datetime.now(UTC)
    try:
        with stages.pipeline_lock(settings, holder=f"pipeline run {run_id}"):
            stages.recover(settings)  # what a killed run left: temp files, half swaps
            stages.write_run_record(settings, summary.__dict__)  # "running" until it ends
            load = _step(summary, "load", lambda: load_raw(settings, run_id))
            summary.rows_loaded = load.rows_by_table
            summary.files_loaded = len(load.loaded)
            summary.files_skipped = load.skipped_files
            summary.rows_quarantined = load.quarantined_by_table
            if settings.as_of is None:  # a backfill of a past date does not need fresh data
                summary.freshness = _step(
                    summary, "freshness", lambda: check_source_freshness(settings)
                )
            _gate(summary, "validate_raw", lambda: validate_raw(settings, run_id))

            run_as_of = stages.resolve_as_of(settings)
            summary.as_of = run_as_of.isoformat()
            logger.info("scoring as of %s", run_as_of)

            dbt = _step(summary, "dbt_build", lambda: run_dbt_build(settings, run_as_of))
            summary.dbt = asdict(dbt)
            # a backfill trains a model of its own date
            trains = backfill or stages.will_train(settings, retrain or settings.retrain)
            _gate(
                summary,
                "validate_marts",
                lambda: validate_marts(settings, run_as_of, run_id, trains),
            )
            crash_point("validate.marts_passed")
            if not backfill:  # a backfill scores with a model of its own date: no drift to check
                _gate(summary, "check_drift", lambda: check_drift(settings, run_as_of, run_id))

            if backfill:
                version = _step(summary, "train", lambda: train_as_of(settings, run_as_of))
                model = {
                    "champion_version": version,
                    "trained_version": version,
                    "decision": f"backfill model trained on what was known at {run_as_of}",
                }
            else:
                model = _step(
                    summary,
                    "train",
                    lambda: train_model(settings, run_as_of, retrain or settings.retrain),
                )
            summary.model = model
            scored = _step(
                summary,
                "score",
                lambda: score_accounts(
                    settings, run_as_of, run_id, model["champion_version"], backfill
                ),
            )
            summary.accounts_scored = scored["accounts_scored"]
            summary.alerts = scored["alerts"]
            summary.top_accounts = scored["top_accounts"]
            summary.report = scored["report"]
            _gate(
                summary,
                "validate_scores",
                lambda: validate_scores(settings, run_as_of, run_id, scored["model_version"]),
            )

            published = _step(
                summary,
                "publish",
                lambda: publish_scores(
                    settings, run_id, run_as_of, model["champion_version"], backfill
                ),
            )
            summary.published = asdict(published)
            synced = (
                []
                if backfill
                else _step(summary, "sync", lambda: sync_destinations(settings, run_id))
            )
            summary.synced = [asdict(s) for s in synced]
        partial = [s.name for s in synced if s.status != "success"]
        summary.status = "completed_with_sync_failures" if partial else "completed"
        if partial:
            logger.warning("records failed to sync (see sync.failed_records): %s", partial)
    except Exception as exc:
        summary.status = "failed"
        summary.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        summary.stages["total"] = round((datetime.now(UTC) - started).total_seconds(), 2)
        stages.write_run_record(settings, summary.__dict__)
        try:
            create_markdown_artifact(
                key="expansion-run-summary", markdown=summary.markdown(), description="Run summary"
            )
        except Exception as exc:  # an artifact must never hide the run's own outcome
            logger.warning("could not write the run summary artifact: %s", exc)
    return dict(summary.__dict__)


def backfill_dates(start: date, end: date, every: str) -> list[date]:
    """The as_of dates of a backfill: each day, each Sunday or each month end in [start, end]."""
    import pandas as pd

    freq = {"day": "D", "week": "W-SUN", "month": "ME"}.get(every)
    if freq is None:
        raise ValueError(f"every={every!r}: expected day, week or month")
    if end < start:
        raise ValueError(f"backfill end {end} is before its start {start}")
    return [d.date() for d in pd.date_range(start, end, freq=freq)]


@flow(name="expansion-backfill", log_prints=True)
def expansion_backfill(start: date, end: date, every: str = "month") -> list[dict[str, Any]]:
    """Score each past as_of date in [start, end] with only the data known then.

    Each date is its own pipeline run (subflow) with a model trained on what was known at that
    date; re-running a date replaces that date's scores in the history, nothing else.
    """
    runs = []
    for day in backfill_dates(start, end, every):
        runs.append(expansion_pipeline(as_of=day, backfill=True))
    return runs
