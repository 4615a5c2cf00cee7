"""The dates a run scores at: its as_of, and a backfill's list of past dates."""

from __future__ import annotations

from datetime import date

import pandas as pd

from flows.errors import ExtractError
from flows.settings import Settings
from flows.warehouse import Warehouse


def resolve_as_of(settings: Settings) -> date:
    """The run's as_of: the configured date, or the latest day with usage data."""
    latest = Warehouse.from_settings(settings).latest_data_date()
    if latest is None:
        raise ExtractError("raw.usage__usage_daily is empty: nothing to score")
    if settings.as_of is None:
        return latest
    if settings.as_of > latest:
        raise ValueError(
            f"as_of {settings.as_of} is after the latest usage data ({latest}); "
            "scores would rest on missing data"
        )
    return settings.as_of


BACKFILL_EVERY = {"day": "D", "week": "W-SUN", "month": "ME", "month_start": "MS"}


def backfill_dates(start: date, end: date, every: str) -> list[date]:
    """The as_of dates of a backfill in [start, end]: each day, each Sunday, each month end
    (`month`) or each first of a month (`month_start`)."""
    freq = BACKFILL_EVERY.get(every.replace("-", "_"))
    if freq is None:
        raise ValueError(f"every={every!r}: expected one of {', '.join(BACKFILL_EVERY)}")
    if end < start:
        raise ValueError(f"backfill end {end} is before its start {start}")
    return [d.date() for d in pd.date_range(start, end, freq=freq)]
