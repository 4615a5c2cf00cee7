"""`expansion explain ACCOUNT_ID`: one account's score, offer and reasons on demand.

The scoring run gives reasons only to the accounts of an action list (models/score.py); this
explains any active account at a date with the champion, the same computation
(`models.score.explain_account`), and says where the account stood in that date's scores when
it was scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from flows.errors import EXIT_BAD_INPUT
from flows.registry import champion_version, load_model
from flows.settings import Settings
from flows.transform.manifest import FEATURES_TABLE, model_params
from flows.warehouse import Warehouse, table_columns
from models.score import explain_account

HISTORY_TABLE = "scores.account_score_history"


class CannotExplain(LookupError):
    """No champion, no such account, or no active snapshot of it at the date."""

    exit_code = EXIT_BAD_INPUT


@dataclass
class Explanation:
    """An account's score at a date, and where it stood in that date's scores (if scored)."""

    account_id: str
    as_of: date
    model_version: str
    score: dict[str, Any]  # models.score.explain_account
    reasons: list[str] = field(default_factory=list)
    scored: dict[str, Any] | None = None  # decile, action_rank, touch_tier, model_version


def _latest(warehouse: Warehouse) -> date:
    day = warehouse.read_frame(f"select max(snapshot_date) as d from {FEATURES_TABLE}")["d"].iloc[0]
    if day is None or day != day:
        raise CannotExplain(f"{FEATURES_TABLE} holds no snapshot: run the pipeline first")
    return day.date() if hasattr(day, "date") else day


def _scored(warehouse: Warehouse, account_id: str, as_of: date) -> dict[str, Any] | None:
    with warehouse.connect(read_only=True) as con:
        if not table_columns(con, HISTORY_TABLE):
            return None
        rows = con.execute(
            "select decile, action_rank, touch_tier, suppression_reason, model_version, "
            f"(select count(*) from {HISTORY_TABLE} where as_of = ?) as accounts "
            f"from {HISTORY_TABLE} where account_id = ? and as_of = ? "
            "order by scored_at desc limit 1",
            [as_of, account_id, as_of],
        ).df()
    if rows.empty:
        return None
    row = rows.iloc[0]
    return {str(k): (None if pd.isna(v) else v) for k, v in row.items()}


def explain(settings: Settings, account_id: str, as_of: date | None = None) -> Explanation:
    """The champion's explanation of `account_id` at `as_of` (default: the latest snapshot
    date of marts.account_features). CannotExplain names the account and the date when there
    is nothing to explain."""
    version = champion_version(settings.registry)
    if version is None:
        raise CannotExplain(f"no champion model in {settings.registry}: run or train first")
    warehouse = Warehouse.from_settings(settings)
    if not warehouse.exists():
        raise CannotExplain(f"no warehouse at {settings.warehouse}: run the pipeline first")
    day = as_of or _latest(warehouse)
    rows = warehouse.read_frame(
        f"select * from {FEATURES_TABLE} where account_id = ?", [account_id]
    )
    model = load_model(settings.registry, version)
    try:
        score = explain_account(
            model,
            rows,
            day,
            account_id,
            model_params(settings),
            locale=settings.locale,
            currency=settings.reporting_currency,
        )
    except ValueError as exc:
        raise CannotExplain(str(exc)) from None
    reasons = [score[c] for c in ("reason_1", "reason_2", "reason_3") if score.get(c)]
    return Explanation(
        account_id=account_id,
        as_of=day,
        model_version=version,
        score=score,
        reasons=reasons,
        scored=_scored(warehouse, account_id, day),
    )
