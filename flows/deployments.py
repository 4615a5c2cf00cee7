"""Deployments as code: the daily pipeline and the weekly retrain, on cron schedules.

`expansion serve` runs both on this machine with `prefect.serve` (a long-lived process that
polls the Prefect API for scheduled runs). For teams, `prefect.yaml` at the project root
declares the same deployments for a work pool (`prefect deploy --all`).

One run at a time: each deployment has a concurrency limit of 1 with collision strategy
CANCEL_NEW (a run that would overlap a running one is cancelled, not queued behind it: the
next scheduled run picks up whatever it missed). Manual runs outside Prefect are kept apart
by the pipeline's own lock (`<home>/pipeline.lock`).
"""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron

from flows.pipeline import expansion_pipeline
from flows.settings import Settings

ONE_AT_A_TIME = ConcurrencyLimitConfig(
    limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
)


def build_deployments(settings: Settings) -> list[Any]:
    """The daily scoring run and the weekly retrain, with the schedules from the settings."""
    daily = expansion_pipeline.to_deployment(
        name="daily",
        schedules=[Cron(settings.daily_cron, timezone=settings.schedule_timezone)],
        concurrency_limit=ONE_AT_A_TIME,
        tags=["expansion"],
        description="Load new extracts, build marts, gate, score with the champion, publish, sync.",
    )
    retrain = expansion_pipeline.to_deployment(
        name="weekly-retrain",
        schedules=[Cron(settings.retrain_cron, timezone=settings.schedule_timezone)],
        parameters={"retrain": True},
        concurrency_limit=ONE_AT_A_TIME,
        tags=["expansion"],
        description="The daily run plus a challenger model, promoted only if it beats the champion.",
    )
    return [daily, retrain]


def serve(settings: Settings) -> None:  # pragma: no cover - blocks until interrupted
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(settings))
