"""Source freshness: `dbt source freshness` on the raw tables, on the process's parse."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from flows.errors import SourceStale
from flows.settings import Settings
from flows.transform.command import dbt_args, dbt_env, dbt_runner
from flows.transform.parse import parsed_project

log = logging.getLogger(__name__)


@dataclass
class SourceFreshness:
    """One source table's freshness as dbt reports it."""

    source: str
    status: str  # pass | warn | error | runtime error
    max_loaded_at: str
    age_hours: float | None


def check_freshness(settings: Settings, as_of: date | None = None) -> list[SourceFreshness]:
    """`dbt source freshness` on the raw tables; error_after fails the run when enforced.

    Run on the manifest the build reuses (flows/transform/parse.py: one parse per process).
    Freshness reads the sources' `_loaded_at` only, so it needs no as_of: `as_of` (default
    the configured one, else none) only fills the var of the on-run-start hooks. The pipeline
    does not choose the run's as_of before it (flows/run/as_of.py counts a month of usage
    days, over a second at 100k accounts, and the raw gate may still take rows out)."""
    if settings.freshness == "off":
        return []
    as_of = as_of or settings.as_of
    parsed = parsed_project(settings)
    args = dbt_args(["source", "freshness"], settings, as_of)
    with dbt_env(settings):
        result = dbt_runner(parsed.manifest).invoke(args)
    rows = []
    for r in getattr(result.result, "results", None) or []:
        if not r.node.unique_id.startswith("source."):
            continue  # the project's on-run-start hook runs before freshness too
        age = getattr(r, "age", None)
        rows.append(
            SourceFreshness(
                source=r.node.unique_id.removeprefix("source.expansion."),
                status=str(getattr(r.status, "value", r.status)),
                max_loaded_at=str(getattr(r, "max_loaded_at", "")),
                age_hours=round(age / 3600, 1) if isinstance(age, int | float) else None,
            )
        )
    stale = [r for r in rows if r.status in {"error", "runtime error"}]
    for r in rows:
        if r.status == "warn":
            log.warning("source %s is getting stale: last load %s h ago", r.source, r.age_hours)
    if stale and settings.freshness == "enforce":
        names = ", ".join(f"{r.source} (last load {r.age_hours} h ago)" for r in stale)
        raise SourceStale(
            f"source(s) have not delivered within their freshness window: {names}; "
            "see freshness in dbt_project/models/staging/*/_*__sources.yml, or set "
            "EXPANSION_FRESHNESS=warn"
        )
    return rows
