"""Derived features: model inputs computed row by row from other columns of the same
`marts.account_snapshots` row (opted into under `features.derived` in params.yaml).

Only names and formulas live here; `models.features.derived_feature` evaluates them on a
frame and `models.params` checks the names params.yaml lists, so both import this module and
it imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den with NaN where den is 0 or null."""
    return num / den.where(den != 0.0)


@dataclass(frozen=True)
class DerivedFeature:
    """A feature computed row by row from columns of the same snapshot row (no other rows, so
    nothing from other dates or accounts can leak in)."""

    sources: tuple[str, ...]
    compute: Callable[[dict[str, pd.Series]], pd.Series]
    description: str


# Opt in per feature under `features.derived` in params.yaml (each needs a `reasons:` phrase).
DERIVED_FEATURES: dict[str, DerivedFeature] = {
    "limit_pressure": DerivedFeature(
        ("storage_utilization", "api_calls_utilization"),
        lambda c: c["storage_utilization"].combine(c["api_calls_utilization"], np.fmax),
        "the closer plan limit: max(storage_utilization, api_calls_utilization)",
    ),
    "seat_utilization_max": DerivedFeature(
        ("seat_utilization_7d", "seat_utilization_30d"),
        lambda c: c["seat_utilization_7d"].combine(c["seat_utilization_30d"], np.fmax),
        "max(seat_utilization_7d, seat_utilization_30d)",
    ),
    "users_growth_90d": DerivedFeature(
        ("active_users_30d_avg", "active_users_90d_avg"),
        lambda c: _ratio(c["active_users_30d_avg"], c["active_users_90d_avg"]) - 1.0,
        "active_users_30d_avg / active_users_90d_avg - 1 (recent month against the quarter)",
    ),
    "mrr_per_seat": DerivedFeature(
        ("mrr_usd", "seats_purchased"),
        lambda c: _ratio(c["mrr_usd"], c["seats_purchased"]),
        "mrr_usd / seats_purchased (price level of the account)",
    ),
    "mrr_change_90d_pct": DerivedFeature(
        ("mrr_change_90d_usd", "mrr_usd_90d_ago"),
        lambda c: _ratio(c["mrr_change_90d_usd"], c["mrr_usd_90d_ago"]),
        "mrr_change_90d_usd / mrr_usd_90d_ago",
    ),
}
