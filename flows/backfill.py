"""Backfills: several past as_of dates in one run, and the `expansion-backfill` flow.

A backfill is one run over several past dates: the stages of `flows.pipeline.STAGES` marked
`shared` (load, freshness, the raw gate, the dbt parse: nothing in them depends on the as_of)
once, then the others for each date in turn, a model of its own date each. One pipeline lock,
one run record per date and one for the backfill; the first date that fails stops the rest (the
dates before it stay done).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from datetime import date
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.errors import exit_code
from flows.ingest.landing import check_landing_zone
from flows.pipeline import STAGES, RunContext, Stage, run_stages
from flows.run.as_of import backfill_plan, latest_allowed
from flows.run.lock import pipeline_lock
from flows.run.records import BackfillSummary, write_run_record
from flows.run.recovery import recover
from flows.run.stage_lines import date_done
from flows.settings import Settings, get_settings
from flows.warehouse import Warehouse, describe_session

log = logging.getLogger(__name__)


class BackfillStopped(RuntimeError):
    """A date of a backfill failed: the dates before it are done (their scores are in the
    history), the dates after it were not run. The exit code is the failure's own."""

    def __init__(
        self,
        day: date,
        done: list[date],
        left: list[date],
        cause: BaseException,
        summary: BackfillSummary,
    ):
        self.day, self.done, self.left, self.summary = day, done, left, summary
        self.exit_code = exit_code(cause)
        done_text = ", ".join(map(str, done)) or "none"
        left_text = ", ".join(map(str, left)) or "none"
        super().__init__(
            f"backfill stopped at as_of {day}: {type(cause).__name__}: {cause}\n"
            f"dates done (kept): {done_text}; dates not run: {left_text}"
        )


def _check_dates(settings: Settings, days: list[date]) -> None:
    """Every date has usage data on or before it (after the load, before any date runs)."""
    latest = Warehouse.from_settings(settings).latest_data_date(until=latest_allowed())
    late = [d for d in days if latest is None or d > latest]
    if late:
        raise ValueError(
            f"backfill date(s) {', '.join(map(str, late))} after the latest usage data "
            f"({latest}): scores would rest on missing data; nothing was backfilled"
        )


def _run_date(ctx: RunContext, stages: Iterable[Stage]) -> None:
    """One date of a backfill: its stages, its own run record ("running" until it ends)."""
    started = time.perf_counter()
    write_run_record(ctx.settings, ctx.summary.__dict__)
    try:
        run_stages(ctx, stages)
        ctx.summary.status = "completed"
        date_done(ctx.day, round(time.perf_counter() - started, 2), ctx.summary)
    except Exception as exc:
        ctx.summary.status = "failed"
        ctx.summary.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        ctx.summary.stages["total"] = round(time.perf_counter() - started, 2)
        write_run_record(ctx.settings, ctx.summary.__dict__)


def run_backfill(
    settings: Settings,
    dates: Iterable[date],
    *,
    prefect: bool = True,
    run_id: str | None = None,
    retrain: bool = False,
    stages: Iterable[Stage] = STAGES,
) -> BackfillSummary:
    """Backfill past as_of dates in one run: the `shared` stages once, then the others for
    each date in order (history only, a model of the date's own, nothing synced).

    `prefect=False` calls the stages' plain functions (the benchmark); `retrain` fits each
    date's model again even when one was fitted from the same rows (otherwise a rerun reuses
    it); `stages` lets the benchmark wrap each stage (keep their `shared` marks). The summary's
    `shared.stages` are the fixed costs (`total`: lock, recovery and the shared stages), each
    date's `stages` its own; the backfill's run record is `shared`, with the dates' run ids.
    Raises BackfillStopped at the first date that fails.
    """
    days = sorted(set(dates))
    if not days:
        raise ValueError("a backfill needs at least one as_of date")
    run_id = run_id or f"backfill-{uuid.uuid4()}"
    plan = list(stages)
    shared = RunContext(
        settings.model_copy(update={"as_of": None}), run_id, backfill=True, prefect=prefect
    )
    summary = BackfillSummary(shared.summary)
    runs = {d.isoformat(): f"{run_id}-{d.isoformat()}" for d in days}
    shared.summary.backfill = {"dates": list(runs), "runs": runs, "retrain": retrain}
    log.info("%s", describe_session(settings))
    log.info("backfilling %d date(s) in one run: %s", len(days), ", ".join(runs))
    started = time.perf_counter()
    day: date | None = None
    try:
        with pipeline_lock(settings, holder=f"backfill {run_id}"):
            recover(settings)
            write_run_record(settings, shared.summary.__dict__)
            run_stages(shared, [s for s in plan if s.shared])
            _check_dates(settings, days)
            shared.summary.stages["total"] = round(time.perf_counter() - started, 2)
            for day in days:
                ctx = RunContext(
                    settings.model_copy(update={"as_of": day}),
                    runs[day.isoformat()],
                    retrain=retrain,
                    backfill=True,
                    prefect=prefect,
                )
                ctx.summary.as_of = day.isoformat()
                ctx.summary.backfill = {"run_id": run_id}
                summary.dates.append(ctx.summary)
                _run_date(ctx, [s for s in plan if not s.shared])
        shared.summary.status = "completed"
    except Exception as exc:
        shared.summary.status = "failed"
        if day is None:  # a shared stage, or a date without data: no date was run
            shared.summary.error = f"{type(exc).__name__}: {exc}"
            raise
        done = [date.fromisoformat(str(d.as_of)) for d in summary.dates if d.status == "completed"]
        stopped = BackfillStopped(day, done, [d for d in days if d > day], exc, summary)
        shared.summary.error = str(stopped)
        raise stopped from exc
    finally:
        shared.summary.stages.setdefault("total", round(time.perf_counter() - started, 2))
        shared.summary.backfill["total_s"] = round(time.perf_counter() - started, 2)
        write_run_record(settings, shared.summary.__dict__)
    return summary


@flow(name="expansion-backfill", log_prints=True)
def expansion_backfill(
    start: date | None = None,
    end: date | None = None,
    every: str = "month",
    dates: list[date] | None = None,
    retrain: bool = False,
) -> dict[str, Any]:
    """Score past as_of dates with only the data known then, in this one flow run: each date
    in [start, end] (`every`: day, week, month, month_start), or the listed `dates`.

    Load and the raw gate run once; each date gets a dbt build, a model trained on what was
    known at that date (reused when its rows were fitted before, unless `retrain`), scores
    added to the history and nothing synced (`run_backfill`). Re-running a date replaces that
    date's scores in the history, nothing else.
    """
    days = backfill_plan(start, end, every, dates)
    settings = get_settings()
    check_landing_zone(settings)  # before anything is written: a missing zone is a typo
    run_id = str(flow_run.get_id() or f"backfill-{uuid.uuid4()}")
    summary: BackfillSummary | None = None
    try:
        summary = run_backfill(settings, days, run_id=run_id, retrain=retrain)
    except BackfillStopped as exc:
        summary = exc.summary
        get_run_logger().error("%s", exc)
        raise
    finally:
        if summary is not None:
            try:
                create_markdown_artifact(
                    key="expansion-backfill-summary",
                    markdown=summary.markdown(),
                    description="Backfill summary",
                )
            except Exception as exc:  # an artifact must never hide the run's own outcome
                get_run_logger().warning("could not write the backfill summary artifact: %s", exc)
    return summary.as_dict()  # set: run_backfill returned
