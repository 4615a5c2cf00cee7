"""The backfill scenario's dates and what its results keep: fixed (once per backfill) and
per-date time, from the summary `flows.pipeline.run_backfill` returns (or the runs
`expansion backfill --json` prints)."""

from __future__ import annotations

import math
from dataclasses import asdict, is_dataclass
from datetime import date, timedelta
from typing import Any

SHARED_STAGE_HINT = ("load", "freshness", "validate_raw")  # never per date in one backfill


def first_usage_day(end: date, months: int) -> date:
    """The first day of the demo's data: the first of the month `months - 1` before `end`'s."""
    index = end.year * 12 + end.month - 1 - (months - 1)
    return date(index // 12, index % 12 + 1, 1)


def month_ends(start: date, end: date) -> list[date]:
    """Every month end in [start, end]."""
    out: list[date] = []
    index = start.year * 12 + start.month - 1
    while True:
        nxt = index + 1
        last = date(nxt // 12, nxt % 12 + 1, 1) - timedelta(days=1)
        if last > end:
            return out
        if last >= start:
            out.append(last)
        index = nxt


def min_history_months(label_horizon_days: int, n_cutoffs: int, min_train_dates: int) -> int:
    """Months of history a backfilled date needs to train a model of its own: the label window
    plus a month-end snapshot with complete labels for every backtest cut-off and the
    training dates before the first one."""
    return math.ceil(label_horizon_days / 30) + n_cutoffs + min_train_dates


def choose_dates(
    first_usage: date, before: date, wanted: int, history_months: int
) -> tuple[list[date], str | None]:
    """The last `wanted` month ends before `before` that have `history_months` of data behind
    them; a note when there are fewer."""
    earliest = first_usage_day(first_usage, 1)
    index = earliest.year * 12 + earliest.month - 1 + history_months
    floor = date(index // 12, index % 12 + 1, 1) - timedelta(days=1)
    candidates = [d for d in month_ends(first_usage, before - timedelta(days=1)) if d >= floor]
    dates = candidates[-wanted:] if wanted > 0 else []
    note = None
    if len(dates) < wanted:
        note = (
            f"{len(dates)} of the {wanted} monthly dates asked for: a backfilled date needs "
            f"{history_months} months of data behind it to train a model of its own (from "
            f"{floor}), and the data starts {first_usage}"
        )
    return dates, note


def _as_dict(run: Any) -> dict[str, Any]:
    if is_dataclass(run) and not isinstance(run, type):
        return asdict(run)
    return dict(run)


def _stage_seconds(run: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in (run.get("stages") or {}).items() if k != "total"}


def summarize(shared: Any, dates: list[Any]) -> dict[str, Any]:
    """Fixed and per-date seconds of one backfill: `shared` the run summary of the stages run
    once (None when each date ran everything itself, as before issue #19), `dates` one run
    summary per date."""
    shared_run = _as_dict(shared) if shared is not None else {}
    fixed = _stage_seconds(shared_run)
    per = [_as_dict(d) for d in dates]
    per_date: list[dict[str, Any]] = []
    for run in per:
        stages = _stage_seconds(run)
        per_date.append(
            {
                "as_of": run.get("as_of"),
                "status": run.get("status"),
                "seconds": round(sum(stages.values()), 2),
                "stages": stages,
                "dbt_parse_s": (run.get("dbt") or {}).get("parse_s"),
            }
        )
    repeated = sorted({k for run in per_date for k in run["stages"] if k in SHARED_STAGE_HINT})
    parses = [r["dbt_parse_s"] for r in per_date if r["dbt_parse_s"] is not None]
    per_total = sum(r["seconds"] for r in per_date)
    return {
        "dates_run": len(per_date),
        "fixed_stages_s": fixed,
        "fixed_s": round(sum(fixed.values()), 2),
        "fixed_dbt_parse_s": (shared_run.get("dbt") or {}).get("parse_s"),
        "per_date": per_date,
        "per_date_total_s": round(per_total, 2),
        "per_date_mean_s": round(per_total / len(per_date), 2) if per_date else None,
        "shared_stages_repeated_per_date": repeated,
        "dates_parsing_dbt": sum(1 for p in parses if p > 0) if parses else None,
        "statuses": sorted({str(r["status"]) for r in per_date}),
    }


def from_command_output(data: Any) -> dict[str, Any]:
    """`expansion backfill --json`: a list of run summaries (one flow run per date) or an
    object with `shared` and `dates`."""
    if isinstance(data, dict) and "dates" in data:
        return summarize(data.get("shared"), list(data["dates"]))
    return summarize(None, list(data or []))
