"""Derived features: model inputs computed row by row from other columns of the same
`marts.account_features` row (opted into under `features.derived` in params.yaml). They
combine columns every business has; none names a usage metric.

Only names and formulas live here; `models.features.derived_feature` evaluates them on a
frame and `models.params` checks the names params.yaml lists, so both import this module and
it imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
    "mrr_per_unit": DerivedFeature(
        ("mrr_usd", "core_quantity"),
        lambda c: _ratio(c["mrr_usd"], c["core_quantity"]),
        "mrr_usd / core_quantity (price level of the account per unit of its core plan)",
    ),
    "mrr_change_90d_pct": DerivedFeature(
        ("mrr_change_90d_usd", "mrr_usd_90d_ago"),
        lambda c: _ratio(c["mrr_change_90d_usd"], c["mrr_usd_90d_ago"]),
        "mrr_change_90d_usd / mrr_usd_90d_ago",
    ),
}
