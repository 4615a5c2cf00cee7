"""The dates a run scores at: its as_of, and a backfill's list of past dates.

The as_of of a run without `--as-of` is the latest day whose usage is COMPLETE: the latest
usage day on which at least `as_of_min_coverage` (default 0.5) times as many accounts have usage
as on a typical day (the median of the days with usage in the `LOOKBACK_DAYS` before it). A
few rows from a few accounts dated a day (or a month) after everything else therefore do not
move every account's as_of: they stay in raw, are named in a warning (table, file, dates and
the first rows) and are scored by a later run, once their day is complete. A day later than
the run's wall clock (UTC) plus `FUTURE_TOLERANCE` is never an as_of, whatever its coverage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from statistics import median

import pandas as pd

from flows.errors import ExtractError
from flows.settings import Settings
from flows.warehouse import USAGE, UsageAfter, Warehouse

log = logging.getLogger(__name__)

LOOKBACK_DAYS = 28  # the "typical day" is the median of the days with usage in the 4 weeks before
DEFAULT_MIN_COVERAGE = 0.5  # Settings.as_of_min_coverage when the setting is not declared
FUTURE_TOLERANCE = timedelta(days=1)  # a day ahead of UTC: businesses east of Greenwich


@dataclass(frozen=True)
class AsOfChoice:
    """The as_of a run scores at, and what it leaves for later runs."""

    day: date
    latest: date | None  # the latest usage day in raw not in the future (None: explicit as_of)
    held_back: UsageAfter | None = None  # usage rows after `day` (None: none, or explicit)
    reason: str = ""

    @property
    def warning(self) -> str | None:
        """What the run's log and summary say about the rows left for later (None: nothing)."""
        if self.held_back is None or self.held_back.rows == 0:
            return None
        after = self.held_back
        files = "; ".join(
            f"{name} ({n} row{'s' if n != 1 else ''}, "
            f"{first}{'' if first == last else f' to {last}'})"
            for name, n, first, last in after.files[:10]
        )
        more = f"; and {len(after.files) - 10} more file(s)" if len(after.files) > 10 else ""
        rows = "; ".join(_row(r) for r in after.sample)
        return (
            f"{USAGE}: {after.rows} row(s) dated after the as_of {self.day} are left for a later "
            f"run ({self.reason}). File(s): {files}{more}. First rows: {rows}"
        )


def _row(row: dict[str, object]) -> str:
    where = f"{row['file']} row {row['row']}" if row.get("row") is not None else row["file"]
    return (
        f"{where}: account_id {row['account_id']}, usage_date {row['usage_date']}, "
        f"metric {row['metric']}"
    )


def min_coverage(settings: Settings) -> float:
    """The share of a typical day's accounts a day needs to be an as_of (the setting
    `as_of_min_coverage`, EXPANSION_AS_OF_MIN_COVERAGE, when declared)."""
    value = float(getattr(settings, "as_of_min_coverage", None) or DEFAULT_MIN_COVERAGE)
    if not 0 < value <= 1:
        raise ValueError(f"as_of_min_coverage={value}: expected a share in (0, 1]")
    return value


def latest_allowed(now: datetime | None = None) -> date:
    """The latest day an as_of may be: the wall clock's date in UTC plus the tolerance."""
    return ((now or datetime.now(UTC)).astimezone(UTC) + FUTURE_TOLERANCE).date()


def complete_day(
    accounts_per_day: dict[date, int], share: float, lookback: int = LOOKBACK_DAYS
) -> date | None:
    """The latest day (within `lookback` days of the last one) on which at least `share` times
    as many accounts have usage as on the median day with usage in the `lookback` days before
    it; a day with nothing before it counts as complete. None: no such day."""
    if not accounts_per_day:
        return None
    last = max(accounts_per_day)
    for day in sorted(accounts_per_day, reverse=True):
        if day < last - timedelta(days=lookback):
            break
        before = [
            n for d, n in accounts_per_day.items() if day - timedelta(days=lookback) <= d < day
        ]
        if not before or accounts_per_day[day] >= share * median(before):
            return day
    return None


def choose_as_of(settings: Settings, *, now: datetime | None = None) -> AsOfChoice:
    """The run's as_of (see the module's docstring), or the configured date after checking
    that usage data reaches it. Raises when raw holds no usage to score."""
    warehouse = Warehouse.from_settings(settings)
    cap = latest_allowed(now)
    latest = warehouse.latest_data_date(until=cap)
    if latest is None:
        beyond = warehouse.latest_data_date()
        raise ExtractError(
            f"{USAGE} is empty: nothing to score"
            if beyond is None
            else f"{USAGE} has usage only after {cap} (today in UTC plus "
            f"{FUTURE_TOLERANCE.days} day), up to {beyond}: nothing to score"
        )
    if settings.as_of is not None:
        if settings.as_of > latest:
            raise ValueError(
                f"as_of {settings.as_of} is after the latest usage data ({latest}); "
                "scores would rest on missing data"
            )
        return AsOfChoice(settings.as_of, None, reason="the configured as_of")
    share = min_coverage(settings)
    counts = warehouse.accounts_per_usage_day(latest - timedelta(days=2 * LOOKBACK_DAYS), latest)
    day = complete_day(counts, share)
    if day is None:  # no complete day in four weeks: coverage alone cannot choose
        day = latest
        reason = (
            f"no usage day of the last {LOOKBACK_DAYS} reaches {share:.0%} of a typical day's "
            f"accounts, so the latest day {latest} is the as_of"
        )
    else:
        typical = median(
            [n for d, n in counts.items() if day - timedelta(days=LOOKBACK_DAYS) <= d < day]
            or [counts[day]]
        )
        later = sorted(d for d in counts if d > day)
        reason = (
            f"the as_of is the latest usage day with usage from at least {share:.0%} as many "
            f"accounts as a typical day of the {LOOKBACK_DAYS} before it "
            f"(EXPANSION_AS_OF_MIN_COVERAGE): {day} has {counts[day]} account(s), a typical day "
            f"{typical:g}" + "".join(f", {d} only {counts[d]}" for d in later[:5])
        )
    beyond = warehouse.latest_data_date()
    if beyond is not None and beyond > cap:
        reason += (
            f"; rows after {cap} are dated later than today in UTC plus "
            f"{FUTURE_TOLERANCE.days} day and never set the as_of"
        )
    held = warehouse.usage_rows_after(day) if beyond is not None and beyond > day else None
    return AsOfChoice(day, latest, held, reason)


def resolve_as_of(settings: Settings, *, now: datetime | None = None) -> date:
    """The run's as_of (`choose_as_of`); the rows it leaves for later are logged."""
    choice = choose_as_of(settings, now=now)
    if choice.warning:
        log.warning(choice.warning)
    return choice.day


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


def backfill_plan(
    start: date | None, end: date | None, every: str = "month", dates: list[date] | None = None
) -> list[date]:
    """A backfill's as_of dates, in order: the `every` boundaries in [start, end]
    (`backfill_dates`), or the listed `dates` (each once), one or the other."""
    if dates:
        if start is not None or end is not None:
            raise ValueError(
                "a backfill takes a date range (start, end) or a list of dates, not both"
            )
        return sorted(set(dates))
    if start is None or end is None:
        raise ValueError("a backfill needs a date range (start and end) or a list of dates")
    days = backfill_dates(start, end, every)
    if not days:
        raise ValueError(f"no {every} boundary between {start} and {end}: nothing to backfill")
    return days
