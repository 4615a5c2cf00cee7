"""Alerts on change between two scoring runs: an account moved up a touch tier, or its
expansion probability rose past a threshold.

`alerts_on_change(current, previous, threshold, touch_tiers=...)` gives the rows
`flows.modelling.score.record_alerts` inserts into scores.account_alerts (all but run_id and created_at,
which the caller adds), computed on the two runs' score rows:

* `tier_up`: the account's touch tier ranks higher than in the previous run. Tiers rank in the
  order of `touch_tiers.tiers` in params.yaml, first highest; the default tier, any other
  value and a missing tier rank lowest (with the shipped tiers: high_touch 3, low_touch 2,
  anything else 1). previous_value / current_value are the two tiers.
* `probability_crossed`: p_expansion was below `threshold` and now is at or above it (a
  missing probability on either side never crosses). previous_value / current_value are the
  two probabilities rounded to 3 decimals as text, as SQL's `cast(round(p, 3) as varchar)`
  writes them ('0.2', '0.35').

Only accounts scored in both runs can alert (new accounts cannot), suppressed accounts (or a
missing is_suppressed) never do, and an account can get both alerts. `alert_id` is the md5 of
'as_of|account_id|alert_type', so a date's alerts keep their ids when it is scored again.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd

from models.params import TouchTiers

# What scores.account_alerts holds of an alert, without run_id and created_at.
ALERT_COLUMNS = [
    "alert_id",
    "as_of",
    "account_id",
    "account_name",
    "owner_name",
    "alert_type",
    "previous_value",
    "current_value",
    "p_expansion",
    "next_best_offer",
    "reason_1",
]
CURRENT_COLUMNS = [
    "account_id",
    "as_of",
    "account_name",
    "owner_name",
    "touch_tier",
    "p_expansion",
    "is_suppressed",
    "next_best_offer",
    "reason_1",
]
PREVIOUS_COLUMNS = ["account_id", "touch_tier", "p_expansion"]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def tier_ranks(touch_tier: pd.Series, tiers: Sequence[str]) -> pd.Series:
    """Rank of each touch tier: the first of `tiers` len(tiers) + 1, the next one less, ...,
    anything else (the default tier, an unknown or a missing value) 1."""
    ranks = {name: len(tiers) + 1 - i for i, name in enumerate(tiers)}
    return touch_tier.map(lambda t: 1 if _missing(t) else ranks.get(t, 1)).astype("int64")


def probability_text(p: float) -> str:
    """`p` rounded to 3 decimals, half away from zero, as text: what DuckDB's
    `cast(round(p, 3) as varchar)` gives (0.2 -> '0.2', 0.0625 -> '0.063', 1 -> '1.0')."""
    rounded = float(Decimal(float(p)).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP))
    return repr(rounded)


def _date_text(value: Any) -> str | None:
    if _missing(value) or value is pd.NaT:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return pd.Timestamp(value).date().isoformat()


def alert_id(as_of: Any, account_id: Any, alert_type: str) -> str:
    """md5 of 'as_of|account_id|alert_type' (missing parts left out, as SQL's concat_ws)."""
    parts = [_date_text(as_of), None if _missing(account_id) else str(account_id), alert_type]
    text = "|".join(p for p in parts if p is not None)
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def alerts_on_change(
    current: pd.DataFrame,
    previous: pd.DataFrame,
    threshold: float,
    *,
    touch_tiers: TouchTiers,
) -> pd.DataFrame:
    """Alerts of the accounts in `current` (this run's scores, CURRENT_COLUMNS) against
    `previous` (the previous run's scores, PREVIOUS_COLUMNS), columns ALERT_COLUMNS.

    Rows: the tier_up alerts, then the probability_crossed ones, each in the order of
    `current` (an account with several previous rows alerts once per matching row, as a join).
    `touch_tiers` is params.touch_tiers (the order of the tiers).
    """
    missing = [c for c in CURRENT_COLUMNS if c not in current.columns]
    missing += [f"previous.{c}" for c in PREVIOUS_COLUMNS if c not in previous.columns]
    if missing:
        raise ValueError(f"alerts_on_change: missing score column(s) {missing}")
    names = [t.name for t in touch_tiers.tiers]
    now = current.loc[current["account_id"].notna()].copy()
    now["_position"] = np.arange(len(now))
    now["_rank"] = tier_ranks(now["touch_tier"], names).to_numpy()
    before = previous.loc[previous["account_id"].notna(), PREVIOUS_COLUMNS]
    before = before.rename(columns={"touch_tier": "_tier_before", "p_expansion": "_p_before"})
    before["_rank_before"] = tier_ranks(before["_tier_before"], names).to_numpy()
    both = now.merge(before, on="account_id", how="inner", sort=False)
    both = both.sort_values("_position", kind="mergesort")
    listed = (~both["is_suppressed"].astype("boolean")).fillna(False).to_numpy(dtype=bool)
    both = both.loc[listed]

    both["_p_now"] = pd.to_numeric(both["p_expansion"], errors="coerce").astype("float64")
    both["_p_before"] = pd.to_numeric(both["_p_before"], errors="coerce").astype("float64")
    up = both.loc[both["_rank"] > both["_rank_before"]]
    crossed = both.loc[(both["_p_before"] < threshold) & (both["_p_now"] >= threshold)]
    alerts = pd.concat([up, crossed], ignore_index=True)
    kinds = ["tier_up"] * len(up) + ["probability_crossed"] * len(crossed)
    values = {
        "alert_type": kinds,
        "previous_value": [
            *map(_text, up["_tier_before"]),
            *map(probability_text, crossed["_p_before"]),
        ],
        "current_value": [*map(_text, up["touch_tier"]), *map(probability_text, crossed["_p_now"])],
        "alert_id": [
            alert_id(d, a, t)
            for d, a, t in zip(alerts["as_of"], alerts["account_id"], kinds, strict=True)
        ],
    }
    for column, texts in values.items():  # object columns: None stays None (not NaN)
        alerts[column] = pd.Series(texts, index=alerts.index, dtype=object)
    return alerts.loc[:, ALERT_COLUMNS].reset_index(drop=True)
