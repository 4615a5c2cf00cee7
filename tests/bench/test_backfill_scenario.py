"""The backfill scenario's dates and its fixed vs per-date split (bench/backfill.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bench.backfill import (
    TrainingNeeds,
    choose_dates,
    first_usage_day,
    from_command_output,
    month_ends,
    summarize,
)

NEEDS = TrainingNeeds(label_horizon_days=90, validation_dates=2, min_train_dates=2)


def test_first_usage_day_and_month_ends() -> None:
    assert first_usage_day(date(2026, 10, 31), 12) == date(2025, 11, 1)
    assert first_usage_day(date(2026, 10, 31), 1) == date(2026, 10, 1)
    assert month_ends(date(2026, 1, 15), date(2026, 3, 30)) == [
        date(2026, 1, 31),
        date(2026, 2, 28),
    ]


def test_a_date_needs_validation_and_training_snapshots_with_complete_labels() -> None:
    start = date(2025, 11, 1)
    # 2026-06-30: complete labels on Nov..Mar; validation Feb, Mar; training needs two month
    # ends whose 90 days end by Feb 28 (Nov 30 only): not enough
    assert not NEEDS.can_train(start, date(2026, 6, 30))
    assert NEEDS.can_train(start, date(2026, 7, 31))


def test_choose_dates_takes_the_last_month_ends_before_as_of_and_says_when_short() -> None:
    dates, note = choose_dates(date(2024, 11, 1), date(2026, 11, 1), 12, NEEDS)
    assert len(dates) == 12 and note is None
    assert dates[0] == date(2025, 11, 30) and dates[-1] == date(2026, 10, 31)
    short, note = choose_dates(date(2025, 11, 1), date(2026, 11, 1), 12, NEEDS)
    assert short == [date(2026, 7, 31), date(2026, 8, 31), date(2026, 9, 30), date(2026, 10, 31)]
    assert note is not None and "4 of the 12" in note
    # the as_of day itself is not backfilled
    assert choose_dates(date(2024, 11, 1), date(2026, 10, 31), 1, NEEDS)[0] == [date(2026, 9, 30)]


@dataclass
class _Run:
    as_of: str | None
    status: str
    stages: dict[str, float]
    dbt: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    backfill: dict[str, Any] = field(default_factory=dict)


def test_summarize_splits_fixed_from_per_date_time() -> None:
    shared = _Run(
        None,
        "completed",
        {"load": 1.0, "validate_raw": 2.0, "total": 3.5},
        dbt={},
        backfill={"total_s": 20.0},
    )
    dates = [
        _Run("2026-09-30", "completed", {"dbt_build": 5.0, "train": 2.0, "total": 7.5},
             dbt={"parse_s": 0.0}, model={"reused": True}),
        _Run("2026-10-31", "completed", {"dbt_build": 6.0, "score": 1.0},
             dbt={"parse_s": 0.0}, model={"reused": False}),
    ]  # fmt: skip
    out = summarize(shared, dates)
    assert out["fixed_s"] == 3.5  # the shared run's total: lock, recovery and its stages
    assert out["fixed_stages_s"] == {"load": 1.0, "validate_raw": 2.0}
    assert [d["seconds"] for d in out["per_date"]] == [7.5, 7.0]  # total, else the stages' sum
    assert out["per_date_mean_s"] == 7.25 and out["dates_run"] == 2
    assert out["shared_stages_repeated_per_date"] == []
    assert out["dates_parsing_dbt"] == 0 and out["dates_reusing_a_model"] == 1
    assert out["backfill_total_s"] == 20.0


def test_a_backfill_of_separate_runs_repeats_the_shared_stages() -> None:
    """`expansion backfill --json` before issue #19: a list of whole runs, one per date."""
    runs = [
        {"as_of": "2026-09-30", "status": "completed",
         "stages": {"load": 0.3, "validate_raw": 4.0, "dbt_build": 9.0, "total": 14.0},
         "dbt": {"parse_s": 8.0}},
        {"as_of": "2026-10-31", "status": "completed",
         "stages": {"load": 0.2, "validate_raw": 3.0, "dbt_build": 9.0, "total": 13.0},
         "dbt": {}},
    ]  # fmt: skip
    out = from_command_output(runs)
    assert out["fixed_s"] == 0.0 and out["per_date_total_s"] == 27.0
    assert out["shared_stages_repeated_per_date"] == ["load", "validate_raw"]
    assert out["dates_parsing_dbt"] == 1  # only reports that say so are counted
    one_go = from_command_output({"shared": {"stages": {"load": 1.0}}, "dates": runs[:1]})
    assert one_go["fixed_s"] == 1.0 and one_go["dates_run"] == 1
