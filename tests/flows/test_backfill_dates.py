from __future__ import annotations

from datetime import date

import pytest

from flows.run.as_of import backfill_dates


def test_month_ends_and_month_starts() -> None:
    start, end = date(2026, 1, 1), date(2026, 3, 31)
    assert backfill_dates(start, end, "month") == [
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 3, 31),
    ]
    firsts = [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
    assert backfill_dates(start, end, "month_start") == firsts
    assert backfill_dates(start, end, "month-start") == firsts


def test_weeks_days_and_bad_values() -> None:
    assert backfill_dates(date(2026, 3, 1), date(2026, 3, 15), "week") == [
        date(2026, 3, 1),
        date(2026, 3, 8),
        date(2026, 3, 15),
    ]
    assert len(backfill_dates(date(2026, 3, 1), date(2026, 3, 3), "day")) == 3
    with pytest.raises(ValueError, match="expected one of day, week, month, month_start"):
        backfill_dates(date(2026, 3, 1), date(2026, 3, 3), "quarter")
    with pytest.raises(ValueError, match="before its start"):
        backfill_dates(date(2026, 3, 3), date(2026, 3, 1), "day")
