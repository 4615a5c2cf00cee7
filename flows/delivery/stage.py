"""The delivery stages: publish the marts and scores for BI, and sync what changed to every
destination in config/syncs.yml."""

from __future__ import annotations

from datetime import date

from flows.delivery.publish import PublishReport
from flows.delivery.publish import publish as publish_serving
from flows.delivery.serving_postgres import from_settings as postgres_serving
from flows.delivery.sync import SyncReport, sync_all
from flows.settings import Settings
from flows.warehouse import Warehouse


def publish(
    settings: Settings, run_id: str, as_of: date, model_version: str, *, history_only: bool = False
) -> PublishReport:
    return publish_serving(
        Warehouse.from_settings(settings),
        settings.serving,
        run_id,
        as_of.isoformat(),
        model_version,
        history_only=history_only,
        postgres=postgres_serving(settings),
    )


def sync(settings: Settings, run_id: str, *, dry_run: bool = False) -> list[SyncReport]:
    """Every sync in config/syncs.yml; a destination that fails does not stop the others: its
    report says `failed` and why, and the run ends `completed_with_sync_failures` (exit 7)."""
    return sync_all(settings, run_id, dry_run=dry_run)
