"""The ingest stage: every source's new extracts into raw, checked against the contract."""

from __future__ import annotations

from flows.faults import crash_point
from flows.ingest.load import load_sources
from flows.ingest.raw_checked import ensure_raw_checked
from flows.ingest.report import LoadReport
from flows.ingest.sources import load_sources_config
from flows.settings import Settings
from flows.warehouse import Warehouse
from models.business import load_business


def load_raw(settings: Settings, run_id: str) -> LoadReport:
    """Pull what is new from every source in config/sources.yml and append it to raw."""
    config = load_sources_config(settings.sources_file, settings.landing_dir)
    warehouse = Warehouse.from_settings(settings)
    ensure_raw_checked(warehouse)
    report = load_sources(
        config,
        warehouse,
        run_id,
        full_refresh=settings.full_refresh,
        staging_dir=settings.home / "extracts",
        business=load_business(settings.business_file),
    )
    crash_point("load.committed")
    return report
