"""The backfill scenario's dates and what its results keep: fixed (once per backfill) and
per-date time, from the summary `flows.backfill.run_backfill` returns (or the runs
`expansion backfill --json` prints)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, is_dataclass
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


@dataclass(frozen=True)
class TrainingNeeds:
    """What a backfilled date's own model needs (models/splits.py final_split): snapshot dates
    with complete labels, `validation_dates` of them last, and `min_train_dates` earlier ones
    whose label windows (`label_horizon_days`) end before validation begins."""

    label_horizon_days: int
    validation_dates: int
    min_train_dates: int

    def can_train(self, first_usage: date, day: date) -> bool:
        """Whether the month-end snapshots from the data's first month to `day` are enough."""
        horizon = timedelta(days=self.label_horizon_days)
        known = [d for d in month_ends(first_usage, day) if d + horizon <= day]
        validation = known[-self.validation_dates :]
        if len(validation) < self.validation_dates:
            return False
        return sum(1 for d in known if d + horizon <= validation[0]) >= self.min_train_dates


def choose_dates(
    first_usage: date, before: date, wanted: int, needs: TrainingNeeds
) -> tuple[list[date], str | None]:
    """The last `wanted` month ends before `before` with enough history to train a model of
    their own; a note when there are fewer."""
    candidates = [
        d
        for d in month_ends(first_usage, before - timedelta(days=1))
        if needs.can_train(first_usage, d)
    ]
    dates = candidates[-wanted:] if wanted > 0 else []
    note = None
    if len(dates) < wanted:
        note = (
            f"{len(dates)} of the {wanted} monthly dates asked for: a backfilled date trains a "
            f"model of its own, which needs {needs.validation_dates} validation and "
            f"{needs.min_train_dates} training snapshot dates with complete "
            f"{needs.label_horizon_days}-day labels (models/splits.py); the data starts "
            f"{first_usage}"
        )
    return dates, note


def _as_dict(run: Any) -> dict[str, Any]:
    if is_dataclass(run) and not isinstance(run, type):
        return asdict(run)
    return dict(run)


def _stage_seconds(run: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in (run.get("stages") or {}).items() if k != "total"}


def _seconds(run: dict[str, Any]) -> float:
    """A run's own total (its `stages.total`: lock, recovery and stages) else its stages' sum."""
    total = (run.get("stages") or {}).get("total")
    return float(total) if total is not None else sum(_stage_seconds(run).values())


def summarize(shared: Any, dates: list[Any]) -> dict[str, Any]:
    """Fixed and per-date seconds of one backfill: `shared` the run summary of what runs once
    (flows.backfill.run_backfill's BackfillSummary.shared: its stages are the fixed costs, its
    total everything before the first date); None when each date ran everything itself, as
    before issue #19. `dates` one run summary per date."""
    shared_run = _as_dict(shared) if shared is not None else {}
    fixed = _stage_seconds(shared_run)
    per_date: list[dict[str, Any]] = []
    for run in (_as_dict(d) for d in dates):
        per_date.append(
            {
                "as_of": run.get("as_of"),
                "status": run.get("status"),
                "seconds": round(_seconds(run), 2),
                "stages": _stage_seconds(run),
                "dbt_parse_s": (run.get("dbt") or {}).get("parse_s"),
                "model_reused": (run.get("model") or {}).get("reused"),
            }
        )
    repeated = sorted({k for run in per_date for k in run["stages"] if k in SHARED_STAGE_HINT})
    parses = [r["dbt_parse_s"] for r in per_date if r["dbt_parse_s"] is not None]
    per_total = sum(r["seconds"] for r in per_date)
    return {
        "dates_run": len(per_date),
        "fixed_stages_s": fixed,
        "fixed_s": round(_seconds(shared_run), 2) if shared_run else 0.0,
        "fixed_dbt_parse_s": (shared_run.get("dbt") or {}).get("parse_s"),
        "backfill_total_s": (shared_run.get("backfill") or {}).get("total_s"),
        "per_date": per_date,
        "per_date_total_s": round(per_total, 2),
        "per_date_mean_s": round(per_total / len(per_date), 2) if per_date else None,
        "shared_stages_repeated_per_date": repeated,
        "dates_parsing_dbt": sum(1 for p in parses if p > 0) if parses else None,
        "dates_reusing_a_model": sum(1 for r in per_date if r["model_reused"]),
        "statuses": sorted({str(r["status"]) for r in per_date}),
    }


def from_command_output(data: Any) -> dict[str, Any]:
    """`expansion backfill --json`: a list of run summaries (one flow run per date) or an
    object with `shared` and `dates`."""
    if isinstance(data, dict) and "dates" in data:
        return summarize(data.get("shared"), list(data["dates"]))
    return summarize(None, list(data or []))
