"""The expansion pipeline: one parent Prefect flow, and THE ordered list of its stages.

load -> freshness -> validate raw -> as_of -> dbt build -> validate marts -> drift -> train
(when needed) -> score -> validate scores -> publish -> reverse-ETL sync

The clock (the `as_of` stage): a run whose as_of is before the as_of of the serving version in
place runs as a backfill does, whether or not it was asked to: a model of its own date, no
drift gate, no alerts, the score history published alone, nothing synced. The current
serving version and every destination stay as they are, and the run's notes say so. A rerun
of the same as_of as the serving version, or a later one, publishes and syncs as usual.

`STAGES` is the only place the order is written: the flow runs it, `bench/pipeline_bench.py`
measures it stage by stage (`run_stages` without Prefect). Each stage is a plain function of
a `RunContext`: it calls its room's task (`flows/<room>/`), keeps the typed result in the
context and its record in the run summary. Stages hand each other table names and small
reports, never DataFrames: every stage reads what it needs from the private warehouse.

A backfill (`flows/backfill.py`) runs these stages over several past dates in one run: the
stages marked `shared` once, the others for each date.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff

from flows.delivery import stage as delivery
from flows.delivery.publish import PublishReport, published_as_of, replaces_current
from flows.delivery.sync import SyncReport
from flows.errors import GateFailed, TransientSourceError
from flows.faults import crash_point
from flows.ingest import stage as ingest
from flows.ingest.landing import check_landing_zone
from flows.ingest.report import LoadReport
from flows.modelling import score, train
from flows.modelling.score import ScoreResult
from flows.modelling.train import TrainResult
from flows.quality import drift, gates
from flows.quality.artifacts import gate_artifacts
from flows.quality.champion import will_train
from flows.quality.results import GateResult
from flows.quality.scope import begin_marts_build
from flows.run.as_of import choose_as_of
from flows.run.lock import pipeline_lock
from flows.run.records import RunSummary, write_run_record
from flows.run.recovery import recover
from flows.run.stage_lines import stage_done
from flows.settings import Settings, get_settings
from flows.transform import dbt, freshness, parse
from flows.transform.dbt import DbtReport
from flows.transform.freshness import SourceFreshness
from flows.warehouse import describe_session

T = TypeVar("T")
log = logging.getLogger(__name__)


# --- tasks: one per stage, named for it; the work is in the rooms -------------------------


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may pass (a source out of reach, a locked file), never bad data."""
    import duckdb

    return isinstance(state.data, TransientSourceError | duckdb.IOException)


@task(
    name="load_raw",
    cache_policy=NONE,
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_condition_fn=_transient,
)
def load_raw(settings: Settings, run_id: str) -> LoadReport:
    return ingest.load_raw(settings, run_id)


@task(name="parse_dbt_project", cache_policy=NONE)
def parse_dbt_project(settings: Settings) -> float:
    """The process's one dbt parse (flows/transform/parse.py); its seconds."""
    return parse.parsed_project(settings).seconds


@task(name="check_source_freshness", cache_policy=NONE)
def check_source_freshness(settings: Settings) -> list[SourceFreshness]:
    return freshness.check_freshness(settings)


def _gate_task(
    edge: str, check: Callable[[], list[GateResult]], note: str | None = None
) -> list[GateResult]:
    """Run a gate; its artifacts are written whether it passes or not."""
    try:
        results = check()
    except GateFailed as exc:
        gate_artifacts(edge, exc.results, None)
        raise
    gate_artifacts(edge, results, None if results else note)
    return results


@task(name="validate_raw", cache_policy=NONE)
def validate_raw(settings: Settings, run_id: str) -> list[GateResult]:
    return _gate_task(
        "raw", lambda: gates.validate_raw(settings, run_id), "no raw rows loaded by this run"
    )


@flow(name="run_dbt_build", log_prints=True)
def run_dbt_build(settings: Settings, as_of: date) -> DbtReport:
    return dbt.run_dbt_build(settings, as_of)


@task(name="validate_marts", cache_policy=NONE)
def validate_marts(
    settings: Settings, as_of: date, run_id: str, training: bool, rewritten_only: bool = False
) -> list[GateResult]:
    return _gate_task(
        "marts",
        lambda: gates.validate_marts(settings, as_of, run_id, training, rewritten_only),
    )


@task(name="check_drift", cache_policy=NONE)
def check_drift(settings: Settings, as_of: date, run_id: str) -> list[GateResult]:
    return _gate_task(
        "drift",
        lambda: drift.check_drift(settings, as_of, run_id),
        "skipped: no champion model to compare with",
    )


@task(name="train_model", cache_policy=NONE)
def train_model(settings: Settings, as_of: date, force: bool) -> TrainResult:
    return train.train_model(settings, as_of, force=force)


@task(name="train_as_of", cache_policy=NONE)
def train_as_of(settings: Settings, as_of: date, refit: bool) -> TrainResult:
    return train.train_as_of(settings, as_of, refit=refit)


@task(name="score_accounts", cache_policy=NONE)
def score_accounts(
    settings: Settings, as_of: date, run_id: str, model_version: str | None, backfill: bool
) -> ScoreResult:
    return score.score_accounts(
        settings, as_of, run_id, model_version=model_version, backfill=backfill
    )


@task(name="validate_scores", cache_policy=NONE)
def validate_scores(
    settings: Settings, as_of: date, run_id: str, model_version: str
) -> list[GateResult]:
    return _gate_task(
        "scores", lambda: gates.validate_scores(settings, as_of, run_id, model_version)
    )


@task(name="publish_scores", cache_policy=NONE)
def publish_scores(
    settings: Settings, run_id: str, as_of: date, model_version: str, history_only: bool
) -> PublishReport:
    return delivery.publish(settings, run_id, as_of, model_version, history_only=history_only)


@task(name="sync_destinations", cache_policy=NONE)
def sync_destinations(settings: Settings, run_id: str) -> list[SyncReport]:
    return delivery.sync(settings, run_id)


# --- the stages -----------------------------------------------------------------------------


@dataclass
class RunContext:
    """What one run knows as it goes: its settings and options, and each stage's result."""

    settings: Settings
    run_id: str
    retrain: bool = False
    backfill: bool = False
    prefect: bool = True  # False: call the stages' functions directly (bench, no Prefect API)
    summary: RunSummary = field(init=False)
    as_of: date | None = None
    trains: bool = False
    marts_rewritten_only: bool = False  # the marts gate checks the rows the build rewrote
    model: TrainResult | None = None
    scored: ScoreResult | None = None
    published: PublishReport | None = None
    synced: list[SyncReport] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.summary = RunSummary(run_id=self.run_id)

    def call(self, stage_task: Any, *args: Any) -> Any:
        """A stage's task inside the flow, or its plain function outside it."""
        return stage_task(*args) if self.prefect else stage_task.fn(*args)

    def gate(self, stage_task: Any, *args: Any) -> list[GateResult]:
        """A gate; its results reach the summary whether it passes or not."""
        try:
            results: list[GateResult] = self.call(stage_task, *args)
        except GateFailed as exc:
            self.summary.gates += [r.record() for r in exc.results]
            raise
        self.summary.gates += [r.record() for r in results]
        return results

    @property
    def day(self) -> date:
        if self.as_of is None:
            raise RuntimeError("the run's as_of is set by the as_of stage")
        return self.as_of

    def note(self, text: str) -> None:
        """Something the run's reader must know (a warning): logged, and kept in the run
        summary's `notes` (the run record, the flow's result)."""
        log.warning("%s", text)
        self.summary.notes.append(text)


def _load(ctx: RunContext) -> LoadReport:
    load: LoadReport = ctx.call(load_raw, ctx.settings, ctx.run_id)
    ctx.summary.rows_loaded = load.rows_by_table
    ctx.summary.files_loaded = len(load.loaded)
    ctx.summary.files_skipped = load.skipped_files
    ctx.summary.rows_quarantined = load.quarantined_by_table
    return load


def _freshness(ctx: RunContext) -> list[SourceFreshness]:
    rows: list[SourceFreshness] = ctx.call(check_source_freshness, ctx.settings)
    ctx.summary.freshness = [asdict(r) for r in rows]
    return rows


def _dbt_parse(ctx: RunContext) -> float:
    seconds: float = ctx.call(parse_dbt_project, ctx.settings)
    return seconds


def _validate_raw(ctx: RunContext) -> list[GateResult]:
    return ctx.gate(validate_raw, ctx.settings, ctx.run_id)


def _as_of(ctx: RunContext) -> date:
    """The run's as_of, from the raw rows that passed the gate (it may have taken a bad load
    back out); a date before the serving version's makes the run a backfill (the clock)."""
    choice = choose_as_of(ctx.settings)
    ctx.as_of = choice.day
    ctx.summary.as_of = choice.day.isoformat()
    if choice.warning:
        ctx.note(choice.warning)
    try:
        current = published_as_of(ctx.settings.serving_db)
    except Exception as exc:  # publish checks again under the same lock
        log.warning("could not read the as_of of the serving version in place: %s", exc)
        current = None
    if not ctx.backfill and not replaces_current(choice.day, current):
        ctx.backfill = True
        ctx.note(
            f"as_of {choice.day} is before the as_of of the current publication ({current}): "
            "this run writes the score history only, as a backfill does (a model of its own "
            "date, no drift gate, no alerts); the current scores, marts and destinations stay "
            "as they are and nothing is synced"
        )
    log.info("scoring as of %s", ctx.as_of)
    return choice.day


def _dbt_build(ctx: RunContext) -> DbtReport:
    gated = begin_marts_build(ctx.settings)  # every earlier build's marts passed the gate
    report: DbtReport = ctx.call(run_dbt_build, ctx.settings, ctx.day)
    ctx.summary.dbt = asdict(report)
    # the marts gate checks row by row what this build rewrote, when its tests did too
    ctx.marts_rewritten_only = gated and report.tests_scope == "changed"
    # a backfill trains a model of its own date
    ctx.trains = ctx.backfill or will_train(ctx.settings, ctx.retrain or ctx.settings.retrain)
    return report


def _validate_marts(ctx: RunContext) -> list[GateResult]:
    results = ctx.gate(
        validate_marts, ctx.settings, ctx.day, ctx.run_id, ctx.trains, ctx.marts_rewritten_only
    )
    crash_point("validate.marts_passed")
    return results


def _check_drift(ctx: RunContext) -> list[GateResult]:
    return ctx.gate(check_drift, ctx.settings, ctx.day, ctx.run_id)


def _train(ctx: RunContext) -> TrainResult:
    if ctx.backfill:  # a model that knows only what was known at the backfilled date
        model: TrainResult = ctx.call(train_as_of, ctx.settings, ctx.day, ctx.retrain)
    else:
        force = ctx.retrain or ctx.settings.retrain
        model = ctx.call(train_model, ctx.settings, ctx.day, force)
    ctx.model = model
    ctx.summary.model = asdict(model)
    return model


def _champion(ctx: RunContext) -> str:
    if ctx.model is None or ctx.model.champion_version is None:
        raise RuntimeError("no model to score with: the train stage did not run")
    return ctx.model.champion_version


def _score(ctx: RunContext) -> ScoreResult:
    args = (ctx.settings, ctx.day, ctx.run_id, _champion(ctx), ctx.backfill)
    scored: ScoreResult = ctx.call(score_accounts, *args)
    ctx.scored = scored
    ctx.summary.accounts_scored = scored.accounts_scored
    ctx.summary.alerts = scored.alerts
    ctx.summary.top_accounts = scored.top_accounts
    ctx.summary.report = scored.report
    return scored


def _validate_scores(ctx: RunContext) -> list[GateResult]:
    version = ctx.scored.model_version if ctx.scored else _champion(ctx)
    return ctx.gate(validate_scores, ctx.settings, ctx.day, ctx.run_id, version)


def _publish(ctx: RunContext) -> PublishReport:
    args = (ctx.settings, ctx.run_id, ctx.day, _champion(ctx), ctx.backfill)
    published: PublishReport = ctx.call(publish_scores, *args)
    ctx.published = published
    ctx.summary.published = asdict(published)
    if published.history_only and not ctx.backfill:  # publish's own check (defence in depth)
        ctx.note(published.note)
    return published


def _sync(ctx: RunContext) -> list[SyncReport]:
    ctx.synced = ctx.call(sync_destinations, ctx.settings, ctx.run_id)
    ctx.summary.synced = [asdict(s) for s in ctx.synced]
    return ctx.synced


def _always(ctx: RunContext) -> bool:
    return True


def _sends(ctx: RunContext) -> bool:
    """Only a run that replaced the current serving version syncs: never a backfill or a
    past date, nor a run whose publish kept the current version (history only)."""
    return not ctx.backfill and not (ctx.published and ctx.published.history_only)


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: its name (the key of its timing in the run summary), what it
    does, when it runs, and whether a backfill runs it once for all its dates (`shared`:
    nothing in it depends on the as_of) or once per date."""

    name: str
    run: Callable[[RunContext], Any]
    when: Callable[[RunContext], bool] = _always
    shared: bool = False


def _needs_fresh_data(ctx: RunContext) -> bool:
    """A run of today's data checks its sources' freshness; a past date (or a backfill) does
    not need fresh data."""
    return ctx.settings.as_of is None and not ctx.backfill


STAGES: tuple[Stage, ...] = (
    Stage("load", _load, shared=True),
    Stage("freshness", _freshness, when=_needs_fresh_data, shared=True),
    Stage("validate_raw", _validate_raw, shared=True),
    # a backfill parses dbt once for all its dates, as a fixed cost (a daily run's first dbt
    # command, the freshness check, parses)
    Stage("dbt_parse", _dbt_parse, when=lambda ctx: ctx.backfill, shared=True),
    Stage("as_of", _as_of),  # the clock: may turn the run into a backfill
    Stage("dbt_build", _dbt_build),
    Stage("validate_marts", _validate_marts),
    # a backfill scores with a model of its own date: no drift to check
    Stage("check_drift", _check_drift, when=lambda ctx: not ctx.backfill),
    Stage("train", _train),
    Stage("score", _score),
    Stage("validate_scores", _validate_scores),
    Stage("publish", _publish),
    Stage("sync", _sync, when=_sends),
)


@contextmanager
def _timed(summary: RunSummary, stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        summary.stages[stage] = round(time.perf_counter() - start, 2)


def run_stages(ctx: RunContext, stages: Iterable[Stage] = STAGES) -> RunContext:
    """Every stage that applies, in order, each timed into the summary and logged as one
    line when it ends (flows/run/stage_lines.py); the first failure stops the run before
    the next stage."""
    for stage in stages:
        if stage.when(ctx):
            with _timed(ctx.summary, stage.name):
                result = stage.run(ctx)
            seconds = ctx.summary.stages[stage.name]
            stage_done(stage.name, seconds, result, ctx.as_of, ctx.backfill)
    return ctx


def run_pipeline(ctx: RunContext, stages: Iterable[Stage] = STAGES) -> RunSummary:
    """One run: the pipeline lock, recovery from a killed run, the run record ("running"
    until it ends, then its outcome), and the stages. The flow and the benchmark both run
    this; a failure is recorded and raised."""
    settings, summary = ctx.settings, ctx.summary
    started = datetime.now(UTC)
    log.info("%s", describe_session(settings))
    try:
        with pipeline_lock(settings, holder=f"pipeline run {ctx.run_id}"):
            recover(settings)  # what a killed run left: temp files, half swaps
            write_run_record(settings, summary.__dict__)  # "running" until it ends
            run_stages(ctx, stages)
        partial = [s.name for s in ctx.synced if s.status != "success"]
        summary.status = "completed_with_sync_failures" if partial else "completed"
        if partial:
            log.warning("records failed to sync (see sync.failed_records): %s", partial)
    except Exception as exc:
        summary.status = "failed"
        summary.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        summary.stages["total"] = round((datetime.now(UTC) - started).total_seconds(), 2)
        write_run_record(settings, summary.__dict__)
    return summary


# --- the flows ------------------------------------------------------------------------------


@flow(name="expansion-pipeline", log_prints=True)
def expansion_pipeline(
    as_of: date | None = None,
    retrain: bool = False,
    full_refresh: bool = False,
    backfill: bool = False,
) -> dict[str, Any]:
    """Run every stage once for `as_of` (default: the latest complete day of usage data,
    flows/run/as_of.py).

    `backfill=True` (with a past as_of) scores that date with a model trained only on what was
    known then, adds the scores to the history, leaves BI's current scores as they are and
    sends nothing to destinations. An as_of before the current publication's is run so
    whether or not `backfill` is set (the clock: see the module's docstring).
    """
    if backfill and as_of is None:
        raise ValueError("a backfill needs an as_of date")
    settings = get_settings(as_of=as_of, full_refresh=full_refresh or None)
    check_landing_zone(settings)  # before anything is written: a missing zone is a typo
    run_id = str(flow_run.get_id() or uuid.uuid4())
    ctx = RunContext(settings, run_id, retrain=retrain, backfill=backfill)
    summary = ctx.summary
    try:
        run_pipeline(ctx)
    finally:
        try:
            create_markdown_artifact(
                key="expansion-run-summary", markdown=summary.markdown(), description="Run summary"
            )
        except Exception as exc:  # an artifact must never hide the run's own outcome
            get_run_logger().warning("could not write the run summary artifact: %s", exc)
    return dict(summary.__dict__)
