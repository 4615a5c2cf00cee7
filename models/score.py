"""Score the active accounts at an as-of date: probabilities, offer, action list, touch tier.

Per account, in this order:

1. calibrated probabilities and the decile of p_expansion (over all active accounts);
2. suppression (`suppression:` rules in params.yaml): a suppressed account keeps its scores
   but is never in the action list: no `action_rank`, no reasons;
3. the next-best offer and its MRR (`models.offers`); expected expansion MRR = the offer's
   probability x that MRR;
4. `action_rank` 1..n over the non-suppressed accounts, by `action_list.rank_by`
   (expected_mrr: expected expansion MRR; probability: p_expansion), ties by p_expansion then
   account_id;
5. the touch tier: each account, in action order (then the suppressed accounts, in the same
   order), takes the first tier in `touch_tiers.tiers` whose conditions it meets and that
   still has room (`capacity` accounts per owner or overall), else `touch_tiers.default`.
   Conditions: account value (mrr >= min_mrr or segment listed; either unset means no
   value condition) and expected_expansion_mrr >= min_expected_mrr (when set);
6. reasons for the first `reasons_for_top_n` accounts of the action list.

Steps 1 and 6 have a per-row part that can run elsewhere (`flows/modelling/distributed.py` runs it on a
Dask cluster, one partition of accounts per task): `predict` gives the probabilities of rows
of the scoring frame, `contribute` the primary target's per-feature contributions of the
accounts that get reasons. Both default to the model in this process; everything global
(ranks, deciles, offers, tiers, suppression, phrasing) stays here.

What a person reads (reasons, offer labels, suppression reasons) is in the run's `locale`
(`Params.localized`, models/phrases/<locale>.yaml); amounts are in the reporting currency of
the money columns (`reporting_currency`), and reasons print them in it (models/money.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
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
from models.money import DEFAULT_CURRENCY, currency_code
from models.offers import OFFER_COLUMNS, next_best_offers
from models.params import Condition, Params
from models.phrasebook import DEFAULT_LOCALE
from models.reasons import reasons_from_contributions, top_reasons
from models.train import TrainedModel

# Rows of the scoring frame (snapshot columns, one active account per row) -> p_<target> per
# row (Predict) or the primary target's contribution of each model feature (Contribute,
# columns model.features), indexed like the rows given.
Predict = Callable[[pd.DataFrame], pd.DataFrame]
Contribute = Callable[[pd.DataFrame], pd.DataFrame]

__all__ = [
    "OFFER_COLUMNS",
    "SCORE_COLUMNS",
    "Contribute",
    "Predict",
    "action_ranks",
    "deciles",
    "next_best_offers",
    "score_accounts",
    "suppression_reasons",
    "touch_tiers",
]

N_REASONS = 3
NO_OWNER = "(no owner)"
SCORE_COLUMNS: tuple[str, ...] = (
    "account_id",
    "as_of",
    "p_expansion",
    "p_upsell",
    "p_cross_sell",
    "decile",
    "offer_type",
    "next_best_offer",
    "offer_mrr",
    "expected_expansion_mrr",
    "reporting_currency",  # of offer_mrr and expected_expansion_mrr (ISO 4217)
    "action_rank",
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


def suppression_reasons(
    frame: pd.DataFrame, params: Params, *, locale: str = DEFAULT_LOCALE
) -> pd.Series:
    """Reason(s) not to approach each account now ("; "-joined, in `locale`), None when none
    apply."""
    params = params.localized(locale)
    columns = sorted({c.column for rule in params.suppression for c in rule.when})
    require_columns(frame, columns, "suppression rules")
    joined = pd.Series("", index=frame.index, dtype=object)
    for rule in params.suppression:
        hit = pd.Series(True, index=frame.index)
        for condition in rule.when:
            hit &= _holds(frame, condition)
        joined = joined.where(~hit, joined.where(joined.eq(""), joined + "; ") + rule.reason)
    return joined.where(joined.ne(""), None)


def action_ranks(
    suppressed: pd.Series,
    p_expansion: pd.Series,
    expected_mrr: pd.Series,
    account_id: pd.Series,
    params: Params,
) -> pd.Series:
    """1..n over non-suppressed accounts (see the module docstring); <NA> when suppressed."""
    key = expected_mrr if params.action_list.rank_by == "expected_mrr" else p_expansion
    order = np.lexsort(
        (
            account_id.astype(str).to_numpy(),
            -p_expansion.to_numpy(dtype=float),
            -key.fillna(-np.inf).to_numpy(dtype=float),
        )
    )
    listed = order[~suppressed.to_numpy(dtype=bool)[order]]
    values = np.zeros(len(order), dtype=np.int64)
    values[listed] = np.arange(1, len(listed) + 1)
    return pd.Series(values, index=suppressed.index, dtype="Int64").mask(values == 0)


def _owner_keys(frame: pd.DataFrame, owners: Mapping[Any, Any] | pd.Series | None) -> pd.Series:
    if owners is None:
        return pd.Series(NO_OWNER, index=frame.index, dtype=object)
    lookup = owners if isinstance(owners, pd.Series) else pd.Series(dict(owners), dtype=object)
    keys = frame["account_id"].map(lookup)
    return keys.astype(object).where(keys.notna(), NO_OWNER)


def touch_tiers(
    frame: pd.DataFrame,
    params: Params,
    expected_mrr: pd.Series | None = None,
    owners: Mapping[Any, Any] | pd.Series | None = None,
    priority: pd.Series | None = None,
) -> pd.Series:
    """Touch tier per account: the first tier whose conditions hold and that has room.

    `frame` needs mrr and segment (and account_id for per-owner capacity); accounts claim
    capacity in `priority` order (ascending; default: row order). `expected_mrr=None` skips
    the min_expected_mrr conditions. `owners` maps account_id -> owner; without it a
    per-owner capacity counts every account under one owner (never more than the capacity
    overall, with a warning).
    """
    require_columns(frame, ["mrr", "segment"], "touch tiers")
    tiers = params.touch_tiers.tiers
    mrr = as_float(frame["mrr"], "mrr")
    segment = _text(frame["segment"])
    qualifies: list[np.ndarray[Any, np.dtype[np.bool_]]] = []
    for rule in tiers:
        has_value_rule = rule.min_mrr is not None or bool(rule.segments)
        value = segment.isin(rule.segments).to_numpy(dtype=bool, copy=True)
        if rule.min_mrr is not None:
            value = value | mrr.ge(rule.min_mrr).fillna(False).to_numpy(dtype=bool)
        if not has_value_rule:
            value = np.ones(len(frame), dtype=bool)
        if rule.min_expected_mrr is not None and expected_mrr is not None:
            enough = expected_mrr.ge(rule.min_expected_mrr).fillna(False)
            value = value & enough.to_numpy(dtype=bool)
        qualifies.append(value)
    per_owner = any(r.capacity is not None and r.capacity_scope == "owner" for r in tiers)
    if per_owner and owners is None:
        warnings.warn(
            "touch tiers with a capacity per owner but no owners given: the capacity applies "
            "to all accounts together; pass owners=account_id -> owner to score_accounts",
            stacklevel=2,
        )
    if per_owner and owners is not None:
        require_columns(frame, ["account_id"], "touch tier capacity per owner")
        owner = _owner_keys(frame, owners).to_numpy()
    else:
        owner = np.full(len(frame), NO_OWNER, dtype=object)
    order = (
        np.arange(len(frame))
        if priority is None
        else np.argsort(priority.to_numpy(dtype=float), kind="mergesort")
    )
    # Accounts in priority order each take the first qualifying tier with room. Tier by tier
    # that is the same: a tier's room is only used by the accounts that took it, and each
    # account tries the tiers in order, so tier k goes to the first `capacity` (per owner) of
    # the accounts in priority order that qualify for it and took no earlier tier.
    out = np.full(len(frame), params.touch_tiers.default, dtype=object)
    free = np.ones(len(frame), dtype=bool)
    for k, rule in enumerate(tiers):
        candidates = order[free[order] & qualifies[k][order]]
        if rule.capacity is not None:
            if rule.capacity_scope == "owner":
                keys = pd.Series(owner[candidates], dtype=object)
                seen = keys.groupby(keys, sort=False, dropna=False).cumcount().to_numpy()
            else:
                seen = np.arange(len(candidates))
            candidates = candidates[seen < rule.capacity]  # full: overflow to the next tier
        out[candidates] = rule.name
        free[candidates] = False
    return pd.Series(out, index=frame.index, dtype=object)


def deciles(n: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Decile (1 = top) of each position 0..n-1 in a list sorted best first."""
    return (np.arange(n, dtype=np.int64) * 10) // max(n, 1) + 1


def _aligned(result: pd.DataFrame, index: pd.Index, what: str) -> pd.DataFrame:
    """`result` in the order of `index`; an error when it does not have exactly those rows."""
    if len(result) != len(index) or not result.index.sort_values().equals(index.sort_values()):
        raise ValueError(
            f"score_accounts: {what} returned {len(result)} rows, not the {len(index)} rows given"
        )
    return result.loc[index]


def score_accounts(
    model: TrainedModel,
    snapshots: pd.DataFrame,
    as_of: DateLike,
    params: Params,
    reasons_for_top_n: int | None = None,
    owners: Mapping[Any, Any] | pd.Series | None = None,
    predict: Predict | None = None,
    contribute: Contribute | None = None,
    *,
    locale: str = DEFAULT_LOCALE,
    currency: str = DEFAULT_CURRENCY,
) -> pd.DataFrame:
    """One row per active account at `as_of`, best p_expansion first (ties: account_id).

    Features come from `model` (its params and categories); offers, touch tiers, suppression,
    the action list and reason phrases come from `params`, so business rules can change
    without retraining. `owners` (account_id -> owner, e.g. marts.accounts.owner_name) scopes
    per-owner tier capacity. Reasons are computed for the first `reasons_for_top_n` accounts
    of the action list (all listed accounts when None); suppressed accounts get none.
    `predict` and `contribute` replace the per-row model calls made in this process
    (`model.predict_proba`, LightGBM's `pred_contrib` of the primary target) by the same
    computation elsewhere; they get rows of the scoring frame and must return the same values.
    `locale`: the language of what a person reads (reasons, offers, suppression reasons;
    `Params.localized`). `currency`: the reporting currency, that of the money columns of
    `snapshots` (mrr, ...); the amounts of the scores are in it, reasons print it and
    `reporting_currency` names it. Columns: SCORE_COLUMNS (see the module docstring).
    """
    params = params.localized(locale)
    currency = currency_code(currency)
    day = to_timestamp(as_of)
    frame = scoring_frame(snapshots, day)
    X, _ = prepare_features(frame, model.params, model.categories)
    if predict is None:
        probs = model.predict_proba(X)
    else:
        probs = _aligned(predict(frame), frame.index, "predict")
    for target in ("expansion", "upsell", "cross_sell"):
        if f"p_{target}" not in probs:
            raise ValueError(f"model {model.version} has no booster for target {target!r}")
    order = np.lexsort(
        (frame["account_id"].astype(str).to_numpy(), -probs["p_expansion"].to_numpy())
    )
    frame, X, probs = frame.iloc[order], X.iloc[order], probs.iloc[order]
    suppression = suppression_reasons(frame, params, locale=locale)
    suppressed = suppression.notna()
    offers = next_best_offers(frame, probs, params, locale=locale)
    rank = action_ranks(
        suppressed,
        probs["p_expansion"],
        offers["expected_expansion_mrr"],
        frame["account_id"],
        params,
    )
    # Suppressed accounts claim tier capacity only after every account of the action list.
    after_list = len(frame) + action_ranks(
        ~suppressed,
        probs["p_expansion"],
        offers["expected_expansion_mrr"],
        frame["account_id"],
        params,
    )
    priority = rank.astype("Float64").fillna(after_list.astype("Float64")).astype(float)
    tiers = touch_tiers(
        frame, params, offers["expected_expansion_mrr"], owners=owners, priority=priority
    )
    out = pd.DataFrame(
        {
            "account_id": frame["account_id"],
            "as_of": day.date(),
            "p_expansion": probs["p_expansion"],
            "p_upsell": probs["p_upsell"],
            "p_cross_sell": probs["p_cross_sell"],
            "decile": deciles(len(frame)),
            **{c: offers[c] for c in offers.columns},
            "reporting_currency": currency,
            "action_rank": rank,
            "touch_tier": tiers,
            "is_suppressed": suppressed,
            "suppression_reason": suppression,
        },
        index=frame.index,
    )
    listed = rank.dropna().sort_values()
    if reasons_for_top_n is not None:
        listed = listed[listed <= max(reasons_for_top_n, 0)]
    candidates = listed.index
    if contribute is None or candidates.empty:
        reasons = top_reasons(
            model,
            X.loc[candidates],
            frame.loc[candidates],
            n=N_REASONS,
            templates=params.reasons,
            currency=currency,
        )
    else:
        contrib = _aligned(contribute(frame.loc[candidates]), candidates, "contribute")
        reasons = reasons_from_contributions(
            contrib.loc[:, model.features].to_numpy(dtype=float),
            X.loc[candidates, model.features],
            frame.loc[candidates],
            params.reasons,
            N_REASONS,
            currency=currency,
        )
    out = out.join(reasons)
    out["model_version"] = model.version or "unregistered"
    return out.loc[:, list(SCORE_COLUMNS)].reset_index(drop=True)
