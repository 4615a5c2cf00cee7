"""Score the active accounts at an as-of date: probabilities, offer, touch tier, suppression."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.features import (
    DateLike,
    as_float,
    prepare_features,
    require_columns,
    scoring_frame,
    to_timestamp,
)
from models.params import Condition, Params
from models.reasons import top_reasons
from models.train import TrainedModel

OFFER_COLUMNS = (
    "top_companion_product_name",
    "companion_products_not_held",
    "is_top_tier",
    "next_tier_plan_name",
    "seat_utilization_30d",
)
N_REASONS = 3
SCORE_COLUMNS: tuple[str, ...] = (
    "account_id",
    "as_of",
    "p_expansion",
    "p_upsell",
    "p_cross_sell",
    "decile",
    "expected_expansion_mrr_usd",
    "next_best_offer",
    "touch_tier",
    "is_suppressed",
    "suppression_reason",
    "reason_1",
    "reason_2",
    "reason_3",
    "reason_codes",
    "model_version",
)

_OPS = {
    "gt": np.greater,
    "ge": np.greater_equal,
    "lt": np.less,
    "le": np.less_equal,
    "eq": np.equal,
    "ne": np.not_equal,
}


def _text(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), None)


def _holds(frame: pd.DataFrame, condition: Condition) -> pd.Series:
    values = as_float(frame[condition.column], condition.column)
    result = _OPS[condition.op](values.to_numpy(), condition.value) & values.notna().to_numpy()
    return pd.Series(result, index=frame.index)


def suppression_reasons(frame: pd.DataFrame, params: Params) -> pd.Series:
    """Reason(s) not to approach each account now ("; "-joined), None when none apply."""
    columns = sorted({c.column for rule in params.suppression for c in rule.when})
    require_columns(frame, columns, "suppression rules")
    reasons: dict[Any, list[str]] = {idx: [] for idx in frame.index}
    for rule in params.suppression:
        hit = pd.Series(True, index=frame.index)
        for condition in rule.when:
            hit &= _holds(frame, condition)
        for idx in hit[hit].index:
            reasons[idx].append(rule.reason)
    return pd.Series(
        ["; ".join(reasons[idx]) or None for idx in frame.index], index=frame.index, dtype=object
    )


def touch_tiers(frame: pd.DataFrame, params: Params) -> pd.Series:
    """First matching touch tier (mrr_usd >= min_mrr_usd or segment listed), else default."""
    require_columns(frame, ["mrr_usd", "segment"], "touch tiers")
    mrr = as_float(frame["mrr_usd"], "mrr_usd")
    segment = _text(frame["segment"])
    tier = pd.Series(params.touch_tiers.default, index=frame.index, dtype=object)
    assigned = pd.Series(False, index=frame.index)
    for rule in params.touch_tiers.tiers:
        match = segment.isin(rule.segments)
        if rule.min_mrr_usd is not None:
            match |= mrr.ge(rule.min_mrr_usd).fillna(False)
        match &= ~assigned
        tier[match] = rule.name
        assigned |= match
    return tier


def next_best_offers(frame: pd.DataFrame, probs: pd.DataFrame, params: Params) -> pd.Series:
    """Cross-sell the usual companion when p_cross_sell >= p_upsell and one exists; else upsell.

    Upsell is more seats when already on the top tier, seats are at or above the threshold, or
    no next tier is known; otherwise the next tier.
    """
    require_columns(frame, list(OFFER_COLUMNS), "the next best offer")
    offers = params.offers
    companion = _text(frame["top_companion_product_name"])
    not_held = as_float(frame["companion_products_not_held"], "companion_products_not_held")
    top_tier = as_float(frame["is_top_tier"], "is_top_tier").fillna(0.0).ne(0.0)
    seats = as_float(frame["seat_utilization_30d"], "seat_utilization_30d")
    plan = _text(frame["next_tier_plan_name"])
    cross = probs["p_cross_sell"].ge(probs["p_upsell"]) & companion.notna() & not_held.ne(0.0)
    more_seats = top_tier | seats.ge(offers.seat_utilization_threshold).fillna(False) | plan.isna()
    out = []
    for i in range(len(frame)):
        if cross.iat[i]:
            out.append(offers.cross_sell.format(product=companion.iat[i]))
        elif more_seats.iat[i]:
            out.append(offers.upsell_seats)
        else:
            out.append(offers.upsell_tier.format(plan=plan.iat[i]))
    return pd.Series(out, index=frame.index, dtype=object)


def deciles(n: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Decile (1 = top) of each position 0..n-1 in a list sorted best first."""
    return (np.arange(n, dtype=np.int64) * 10) // max(n, 1) + 1


def score_accounts(
    model: TrainedModel,
    snapshots: pd.DataFrame,
    as_of: DateLike,
    params: Params,
    reasons_for_top_n: int | None = None,
) -> pd.DataFrame:
    """One row per active account at `as_of`, best p_expansion first (ties: account_id).

    Features come from `model` (its params and categories); offers, touch tiers, suppression
    and reason phrases come from `params`, so business rules can change without retraining.
    Reasons are computed for the top `reasons_for_top_n` non-suppressed accounts by
    p_expansion (all accounts when None). Columns: SCORE_COLUMNS.
    """
    day = to_timestamp(as_of)
    frame = scoring_frame(snapshots, day)
    X, _ = prepare_features(frame, model.params, model.categories)
    probs = model.predict_proba(X)
    for target in ("expansion", "upsell", "cross_sell"):
        if f"p_{target}" not in probs:
            raise ValueError(f"model {model.version} has no booster for target {target!r}")
    order = np.lexsort(
        (frame["account_id"].astype(str).to_numpy(), -probs["p_expansion"].to_numpy())
    )
    frame, X, probs = frame.iloc[order], X.iloc[order], probs.iloc[order]
    mrr = as_float(frame["mrr_usd"], "mrr_usd")
    suppression = suppression_reasons(frame, params)
    out = pd.DataFrame(
        {
            "account_id": frame["account_id"],
            "as_of": day.date(),
            "p_expansion": probs["p_expansion"],
            "p_upsell": probs["p_upsell"],
            "p_cross_sell": probs["p_cross_sell"],
            "decile": deciles(len(frame)),
            "expected_expansion_mrr_usd": probs["p_expansion"] * mrr * model.expansion_mrr_ratio,
            "next_best_offer": next_best_offers(frame, probs, params),
            "touch_tier": touch_tiers(frame, params),
            "is_suppressed": suppression.notna(),
            "suppression_reason": suppression,
        },
        index=frame.index,
    )
    candidates = (
        out.index
        if reasons_for_top_n is None
        else (out.index[~out["is_suppressed"].to_numpy()][: max(reasons_for_top_n, 0)])
    )
    reasons = top_reasons(
        model, X.loc[candidates], frame.loc[candidates], n=N_REASONS, templates=params.reasons
    )
    out = out.join(reasons)
    out["model_version"] = model.version or "unregistered"
    return out.loc[:, list(SCORE_COLUMNS)].reset_index(drop=True)
