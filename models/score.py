"""Score the active accounts at an as-of date: probabilities, offer, action list, touch tier.

Per account, in this order:

1. calibrated probabilities and the decile of p_expansion (over all active accounts);
2. suppression (`suppression:` rules in params.yaml): a suppressed account keeps its scores
   but is never in the action list: no `action_rank`, no reasons;
3. the next-best offer and its MRR (`models.offers`); expected expansion MRR = the offer's
   probability x that MRR;
4. `action_rank` 1..n over the non-suppressed accounts, by `action_list.rank_by`
   (`models.ranking`: balanced p_expansion x offer MRR ** w by default, w chosen on the
   model's backtest; expected_mrr; probability), ties by p_expansion then account_id;
5. the touch tier: each account, in action order (then the suppressed accounts, in the same
   order), takes the first tier in `touch_tiers.tiers` whose conditions it meets and that
   still has room (`capacity` accounts per owner or overall), else `touch_tiers.default`.
   Conditions: account value (mrr >= min_mrr or segment listed; either unset means no
   value condition) and expected_expansion_mrr >= min_expected_mrr (when set);
6. reasons for every account of the action list in a touch tier with a capacity (all it
   holds) and for the first `action_list.default_tier_reasons` accounts of each tier without
   one (the default tier), `reasons_for_accounts`.

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

from models.backtest import Progress
from models.features import (
    DateLike,
    as_bool,
    as_float,
    prepare_features,
    require_columns,
    scoring_frame,
    to_timestamp,
)
from models.money import DEFAULT_CURRENCY, currency_code
from models.offers import OFFER_COLUMNS, next_best_offers
from models.params import Params
from models.phrasebook import DEFAULT_LOCALE
from models.ranking import (
    NO_OWNER,
    action_ranks,
    offers_of,
    ranking_key,
    suppression_reasons,
    value_weight,
)
from models.reasons import reasons_from_contributions, top_reasons
from models.train import TrainedModel

# Rows of the scoring frame (snapshot columns, one active account per row) -> p_<target> per
# row (Predict) or the primary target's contribution of each model feature (Contribute,
# columns model.features), indexed like the rows given.
Predict = Callable[[pd.DataFrame], pd.DataFrame]
Contribute = Callable[[pd.DataFrame], pd.DataFrame]

__all__ = [
    "HEALTH_COLUMNS",
    "OFFER_COLUMNS",
    "SCORE_COLUMNS",
    "Contribute",
    "Predict",
    "action_ranks",
    "deciles",
    "explain_account",
    "next_best_offers",
    "reasons_for_accounts",
    "score_accounts",
    "suppression_reasons",
    "touch_tiers",
]

N_REASONS = 3
# Customer-success context published beside the score (marts.account_snapshots, built in dbt:
# dbt_project/DECISIONLOG.md "Health and loyalty"); not model features. Null when the snapshot
# frame lacks them (a warehouse built before they existed).
HEALTH_COLUMNS: tuple[str, ...] = (
    "health_score",
    "health_adoption",
    "health_engagement",
    "health_support",
    "health_sentiment",
    "loyalty_stage",
)
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
    *HEALTH_COLUMNS,
    "reason_1",
    "reason_2",
    "reason_3",
    "reason_codes",
    "model_version",
)


def _text(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), None)


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


def reasons_for_accounts(
    rank: pd.Series,
    tiers: pd.Series,
    params: Params,
    top_n: int | None = None,
) -> pd.Index:
    """The accounts (index labels) that get reasons: every listed account (`rank` not NA) of
    a touch tier with a capacity, and the first `action_list.default_tier_reasons` listed
    accounts (by rank) of each tier without one (the default tier). `top_n` replaces the rule:
    the first `top_n` accounts of the action list."""
    listed = rank.dropna().sort_values()
    if top_n is not None:
        return listed.index[listed.to_numpy() <= max(top_n, 0)]
    capped = {t.name for t in params.touch_tiers.tiers if t.capacity is not None}
    tier = tiers.loc[listed.index]
    in_capped = tier.isin(capped).to_numpy(dtype=bool)
    place = tier.groupby(tier, sort=False).cumcount().to_numpy()  # 0.. within a tier, by rank
    first = place < params.action_list.default_tier_reasons
    return listed.index[in_capped | first]


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
    progress: Progress | None = None,
) -> pd.DataFrame:
    """One row per active account at `as_of`, best p_expansion first (ties: account_id).

    Features come from `model` (its params and categories); offers, touch tiers, suppression,
    the action list and reason phrases come from `params`, so business rules can change
    without retraining (`action_list.value_weight: auto` takes the model's
    `action_value_weight`). `owners` (account_id -> owner, e.g. marts.accounts.owner_name)
    scopes per-owner tier capacity. Reasons go to the accounts of `reasons_for_accounts`:
    every account a capped touch tier holds and the first `action_list.default_tier_reasons`
    of the default tier, or with `reasons_for_top_n` the first that many of the action list;
    suppressed accounts get none.
    `predict` and `contribute` replace the per-row model calls made in this process
    (`model.predict_proba`, LightGBM's `pred_contrib` of the primary target) by the same
    computation elsewhere; they get rows of the scoring frame and must return the same values.
    `locale`: the language of what a person reads (reasons, offers, suppression reasons;
    `Params.localized`). `currency`: the reporting currency, that of the money columns of
    `snapshots` (mrr, ...); the amounts of the scores are in it, reasons print it and
    `reporting_currency` names it. Columns: SCORE_COLUMNS (see the module docstring).
    `progress(done, total)` counts the predictions, then the accounts given reasons in
    chunks of REASON_CHUNK (the slow part: per-feature contributions), for a progress bar.
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
    offers = offers_of(frame, probs, params, locale=locale)
    key = ranking_key(
        probs["p_expansion"],
        offers["offer_mrr"],
        offers["expected_expansion_mrr"],
        params.action_list.rank_by,
        value_weight(params, model.action_value_weight),
    )
    rank = action_ranks(suppressed, key, probs["p_expansion"], frame["account_id"])
    # Suppressed accounts claim tier capacity only after every account of the action list.
    after_list = len(frame) + action_ranks(
        ~suppressed, key, probs["p_expansion"], frame["account_id"]
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
            **{c: frame.get(c, None) for c in HEALTH_COLUMNS},
        },
        index=frame.index,
    )
    candidates = reasons_for_accounts(rank, tiers, params, reasons_for_top_n)
    chunks = [candidates[i : i + REASON_CHUNK] for i in range(0, len(candidates), REASON_CHUNK)]
    steps = 1 + len(chunks)
    if progress is not None:
        progress(1, steps)  # the predictions
    parts = []
    for k, chunk in enumerate(chunks or [candidates], start=2):
        parts.append(_reasons(model, X, frame, chunk, params, contribute, currency))
        if progress is not None:
            progress(min(k, steps), steps)
    out = out.join(pd.concat(parts) if len(parts) > 1 else parts[0])
    out["model_version"] = model.version or "unregistered"
    return out.loc[:, list(SCORE_COLUMNS)].reset_index(drop=True)


REASON_CHUNK = 5_000  # accounts given reasons per step of the progress bar


def _reasons(
    model: TrainedModel,
    X: pd.DataFrame,
    frame: pd.DataFrame,
    rows: pd.Index,
    params: Params,
    contribute: Contribute | None,
    currency: str,
) -> pd.DataFrame:
    """reason_1..3 and reason_codes of `rows` (index labels of X and frame)."""
    if contribute is None or rows.empty:
        return top_reasons(
            model,
            X.loc[rows],
            frame.loc[rows],
            n=N_REASONS,
            templates=params.reasons,
            currency=currency,
        )
    contrib = _aligned(contribute(frame.loc[rows]), rows, "contribute")
    return reasons_from_contributions(
        contrib.loc[:, model.features].to_numpy(dtype=float),
        X.loc[rows, model.features],
        frame.loc[rows],
        params.reasons,
        N_REASONS,
        currency=currency,
    )


def explain_account(
    model: TrainedModel,
    snapshots: pd.DataFrame,
    as_of: DateLike,
    account_id: str,
    params: Params,
    *,
    locale: str = DEFAULT_LOCALE,
    currency: str = DEFAULT_CURRENCY,
) -> dict[str, Any]:
    """One account's probabilities, offer, suppression reason and top reasons at `as_of`, as
    `score_accounts` computes them, with reasons even when it is suppressed or beyond the
    accounts that get them when scored. `snapshots`: the account's rows (others are ignored).
    A ValueError names the account and the date when it has no active row at `as_of`."""
    params = params.localized(locale)
    currency = currency_code(currency)
    day = to_timestamp(as_of)
    mine = snapshots.loc[snapshots["account_id"].astype(str) == str(account_id)]
    dates = pd.to_datetime(mine["snapshot_date"]).dt.normalize()
    at = mine.loc[dates.eq(day).to_numpy()]
    if mine.empty:
        raise ValueError(f"account {account_id!r}: no snapshot in marts.account_features")
    if at.empty:
        raise ValueError(
            f"account {account_id!r} has no snapshot at {day.date()} (its snapshots: "
            f"{dates.min().date()} to {dates.max().date()})"
        )
    if not as_bool(at["is_active"], "is_active").any():
        raise ValueError(f"account {account_id!r} is not active at {day.date()}: nothing to score")
    frame = scoring_frame(at, day)
    X, _ = prepare_features(frame, model.params, model.categories)
    probs = model.predict_proba(X)
    offers = offers_of(frame, probs, params, locale=locale)
    suppression = suppression_reasons(frame, params, locale=locale)
    reasons = _reasons(model, X, frame, frame.index, params, None, currency)
    row = pd.concat([probs, offers, reasons], axis=1).iloc[0]
    out = {
        str(k): (None if _missing(v) else getattr(v, "item", lambda v=v: v)())
        for k, v in row.items()
    }
    out.update(
        account_id=str(account_id),
        as_of=day.date(),
        suppression_reason=suppression.iloc[0],
        reporting_currency=currency,
        model_version=model.version or "unregistered",
    )
    return out


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))
