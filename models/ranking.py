"""The action list: who is on it, in which order, and how well that order finds expanders.

* Who: an account is on the action list unless a `suppression:` rule holds for it
  (`suppression_reasons`); a suppressed account keeps its scores but is never listed.
* Order (`ranking_key`, `action_ranks`), by `action_list.rank_by`:
  - `balanced` (default): p_expansion x value ** w, i.e. log p + w log value, value = the
    offer's MRR (`offer_mrr`). w = 0 is the probability order, w = 1 expected MRR by
    p_expansion. An account without an offer (offer_mrr missing or 0) takes as value the
    smallest positive offer MRR among the accounts ranked (1 when none has one): it ranks by
    its probability among the cheapest offers, neither pushed to the bottom of the list (a
    value of 0) nor lifted to its top (a missing value). `action_list.value_weight` is w, or
    `auto`: the w the model chose on its backtest (`choose_value_weight`).
  - `expected_mrr`: expected expansion MRR (the offer's own probability x its MRR);
  - `probability`: p_expansion.
  Ties: p_expansion, then account_id.
* How well (`backtest_lists`, `list_figures`, `rank_backtest`): on every backtest cut-off the
  test rows (never seen by the models that scored them) are listed as scoring lists them, by
  the default ranking and by probability, and the first N are "contacted": how many expanded
  within the label horizon (`hit_rate`), the expansion MRR they actually added
  (`expansion_mrr_captured`, from `expansion_mrr_next`) and the expected MRR of their offers
  (`expected_mrr_captured`). N = `action_list.hit_rate_at` (100) and each capped touch tier's
  capacity in total (overall: the capacity; per owner: capacity x the number of owners of the
  cut-off's accounts, all accounts as one owner when no owners are given, as `touch_tiers`
  does). These are the first N of the whole list, not the tier's own (qualifying) accounts.
* `auto` w (`choose_value_weight`): the largest w of `action_list.auto_weights` whose mean
  hit rate at N = `hit_rate_at` over the cut-offs is at least `min_hit_rate_ratio` x that of
  the probability ranking while its mean expected MRR captured is at least probability's.

Pure functions on DataFrames; `offers_of` is the one call of `models.offers` the scoring and
the backtest figures share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.features import as_float, require_columns
from models.offers import OFFER_COLUMNS, next_best_offers
from models.params import Condition, Params
from models.phrasebook import DEFAULT_LOCALE

RANKINGS = ("default", "probability")
FIGURE_KEYS = (
    "cutoff",
    "ranking",
    "cut",
    "n_contacted",
    "expanders",
    "hit_rate",
    "expansion_mrr_captured",
    "expected_mrr_captured",
    "n_rows",
)
NO_OWNER = "(no owner)"
CURVE_POINTS = 40  # points of the curve over N (`ranking_curve`), besides the list sizes
_OPS = {
    "gt": np.greater,
    "ge": np.greater_equal,
    "lt": np.less,
    "le": np.less_equal,
    "eq": np.equal,
    "ne": np.not_equal,
}


# --- who and in which order -------------------------------------------------------------------


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


def offers_of(
    frame: pd.DataFrame,
    probs: pd.DataFrame,
    params: Params,
    *,
    locale: str = DEFAULT_LOCALE,
) -> pd.DataFrame:
    """The next-best offer of each row of `frame` (`models.offers.next_best_offers`: offer_type,
    next_best_offer, offer_mrr, expected_expansion_mrr): the one call of it, shared by scoring
    and the backtest's ranking figures."""
    return next_best_offers(frame, probs, params, locale=locale)


def value_weight(params: Params, chosen: float | None) -> float:
    """w of the balanced ranking: `action_list.value_weight`, or with `auto` the model's
    `chosen` one (0, the probability order, for a model that chose none: saved before it
    could, or trained without a backtest)."""
    weight = params.action_list.value_weight
    if weight == "auto":
        return 0.0 if chosen is None or not math.isfinite(chosen) else float(chosen)
    return float(weight)


def ranking_key(
    p_expansion: pd.Series,
    offer_mrr: pd.Series,
    expected_mrr: pd.Series,
    rank_by: str,
    weight: float = 0.0,
) -> pd.Series:
    """The action list's sort key (larger first) by `rank_by` (module docstring); `weight`
    is w of the balanced ranking."""
    p = p_expansion.astype("float64")
    if rank_by == "probability":
        return p
    if rank_by == "expected_mrr":
        return expected_mrr.astype("float64").fillna(-np.inf)
    value = offer_mrr.astype("float64")
    value = value.where(value.gt(0) & np.isfinite(value))
    floor = float(value.min()) if value.notna().any() else 1.0
    log_p = np.log(p.clip(lower=1e-300).to_numpy())
    log_value = np.log(value.fillna(floor).to_numpy())
    return pd.Series(log_p + weight * log_value, index=p.index, dtype="float64")


def action_ranks(
    suppressed: pd.Series, key: pd.Series, p_expansion: pd.Series, account_id: pd.Series
) -> pd.Series:
    """1..n over the non-suppressed accounts by `key` (larger first; ties: p_expansion, then
    account_id); <NA> when suppressed."""
    order = np.lexsort(
        (
            account_id.astype(str).to_numpy(),
            -p_expansion.to_numpy(dtype=float),
            -key.to_numpy(dtype=float),
        )
    )
    listed = order[~suppressed.to_numpy(dtype=bool)[order]]
    values = np.zeros(len(order), dtype=np.int64)
    values[listed] = np.arange(1, len(listed) + 1)
    return pd.Series(values, index=suppressed.index, dtype="Int64").mask(values == 0)


# --- how well: the backtest's lists ---------------------------------------------------------


def backtest_lists(
    frame: pd.DataFrame,
    predictions: pd.DataFrame,
    params: Params,
) -> pd.DataFrame:
    """The action list of every backtest cut-off: one row per non-suppressed test row with
    cutoff, account_id, p_expansion, offer_mrr, expected_expansion_mrr, y (expanded within
    the horizon, 0/1) and expansion_mrr (`expansion_mrr_next`, 0 when missing).

    `frame`: the training frame (`training_frame`), whose rows at a cut-off are its test rows;
    `predictions`: the backtest's (`PREDICTION_COLUMNS`), of which the calibrated LightGBM
    rows of the three targets are used. A cut-off without predictions for all three targets
    (a target that could not be fitted) has no list."""
    columns = ["cutoff", "account_id", "p_expansion", "offer_mrr", "expected_expansion_mrr"]
    columns += ["y", "expansion_mrr"]
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    if predictions is None or predictions.empty:
        return empty
    targets = ("expansion", "upsell", "cross_sell")
    lgbm = predictions.loc[
        (predictions["model"] == "lightgbm") & predictions["target"].isin(targets)
    ]
    probs_all = lgbm.set_index(["cutoff", "account_id", "target"])["p"].unstack("target")
    # The texts (offer labels, suppression reasons) are not used; they are phrased in the
    # locale the params already are in (usage features phrased in the run's), which is safe.
    locale = next(
        (t.locale for t in params.reasons.values() if t.locale != DEFAULT_LOCALE), DEFAULT_LOCALE
    )
    dates = pd.to_datetime(frame["snapshot_date"]).dt.strftime("%Y-%m-%d")
    label = params.targets[params.primary_target]
    lists: list[pd.DataFrame] = []
    for cutoff in sorted(lgbm["cutoff"].unique()):
        probs = probs_all.loc[cutoff]
        if not set(targets) <= set(probs.columns) or probs[list(targets)].isna().any().any():
            continue
        test = frame.loc[dates.eq(cutoff)]
        test = test.loc[test["account_id"].astype(str).isin(probs.index)]
        if test.empty:
            continue
        p = probs.reindex(test["account_id"].astype(str).to_numpy())
        p = pd.DataFrame({f"p_{t}": p[t].to_numpy(dtype=float) for t in targets}, index=test.index)
        offers = offers_of(test, p, params, locale=locale)
        listed = suppression_reasons(test, params, locale=locale).isna()
        gain = as_float(test["expansion_mrr_next"], "expansion_mrr_next").fillna(0.0)
        rows = pd.DataFrame(
            {
                "cutoff": str(cutoff),
                "account_id": test["account_id"].astype(str),
                "p_expansion": p["p_expansion"],
                "offer_mrr": offers["offer_mrr"].astype("float64"),
                "expected_expansion_mrr": offers["expected_expansion_mrr"].astype("float64"),
                "y": as_float(test[label], label).fillna(0.0).astype(np.int64),
                "expansion_mrr": gain,
            },
            index=test.index,
        )
        lists.append(rows.loc[listed.to_numpy()])
    return pd.concat(lists, ignore_index=True) if lists else empty


def list_order(rows: pd.DataFrame, rank_by: str, weight: float = 0.0) -> pd.DataFrame:
    """`rows` of one list (`backtest_lists` columns) in action order."""
    key = ranking_key(
        rows["p_expansion"], rows["offer_mrr"], rows["expected_expansion_mrr"], rank_by, weight
    )
    nobody = pd.Series(False, index=rows.index)
    rank = action_ranks(nobody, key, rows["p_expansion"], rows["account_id"])
    return rows.iloc[np.argsort(rank.to_numpy(dtype=np.int64), kind="stable")]


def list_figures(ordered: pd.DataFrame, n: int) -> dict[str, Any]:
    """What contacting the first `n` accounts of an ordered list finds: n_contacted (n, or
    the whole list when shorter), expanders, hit_rate, expansion_mrr_captured,
    expected_mrr_captured, n_rows (the list's length)."""
    top = ordered.iloc[: max(int(n), 0)]
    contacted = len(top)
    expanders = int(top["y"].sum())
    return {
        "n_contacted": contacted,
        "expanders": expanders,
        "hit_rate": expanders / contacted if contacted else math.nan,
        "expansion_mrr_captured": float(top["expansion_mrr"].sum()),
        "expected_mrr_captured": float(top["expected_expansion_mrr"].fillna(0.0).sum()),
        "n_rows": len(ordered),
    }


def list_sizes(params: Params, n_owners: int = 1) -> dict[str, int]:
    """N at which the lists are measured: "top_<hit_rate_at>", and each touch tier with a
    capacity: its total capacity (per owner: capacity x `n_owners`)."""
    sizes = {f"top_{params.action_list.hit_rate_at}": params.action_list.hit_rate_at}
    for tier in params.touch_tiers.tiers:
        if tier.capacity is not None:
            owners = n_owners if tier.capacity_scope == "owner" else 1
            sizes[tier.name] = tier.capacity * max(owners, 1)
    return sizes


def _owner_count(account_id: pd.Series, owners: Mapping[Any, Any] | pd.Series | None) -> int:
    if owners is None:
        return 1
    lookup = owners if isinstance(owners, pd.Series) else pd.Series(dict(owners), dtype=object)
    keys = account_id.map(lookup)
    return int(keys.astype(object).where(keys.notna(), NO_OWNER).nunique())


def _default_ranking(params: Params, weight: float) -> tuple[str, float]:
    rank_by = params.action_list.rank_by
    return rank_by, (value_weight(params, weight) if rank_by == "balanced" else 0.0)


def _mean_at(lists: pd.DataFrame, n: int, rank_by: str, weight: float) -> tuple[float, float]:
    """Mean hit rate and expected MRR captured at `n` over the cut-offs of `lists`."""
    figures = [
        list_figures(list_order(rows, rank_by, weight), n)
        for _, rows in lists.groupby("cutoff", sort=True)
    ]
    return (
        float(np.mean([f["hit_rate"] for f in figures])),
        float(np.mean([f["expected_mrr_captured"] for f in figures])),
    )


def choose_value_weight(
    lists: pd.DataFrame, params: Params
) -> tuple[float | None, list[dict[str, Any]]]:
    """(w, the scan behind it): the largest of `action_list.auto_weights` whose mean hit rate
    at `hit_rate_at` over the cut-offs of `lists` is at least `min_hit_rate_ratio` x the
    probability ranking's while its mean expected MRR captured is at least probability's
    (0 when none is, the probability order itself). None when `lists` is empty. Each scan
    row: value_weight, hit_rate, expected_mrr_captured (means), passes."""
    if lists.empty:
        return None, []
    settings = params.action_list
    n = settings.hit_rate_at
    base_hit, base_expected = _mean_at(lists, n, "probability", 0.0)
    scan: list[dict[str, Any]] = []
    for weight in sorted(set(settings.auto_weights), reverse=True):
        hit, expected = _mean_at(lists, n, "balanced", weight)
        passes = (
            hit >= settings.min_hit_rate_ratio * base_hit - 1e-12
            and expected >= base_expected - 1e-9 * max(abs(base_expected), 1.0)
        )
        scan.append(
            {
                "value_weight": float(weight),
                "hit_rate": hit,
                "expected_mrr_captured": expected,
                "passes": bool(passes),
            }
        )
    chosen = next((row["value_weight"] for row in scan if row["passes"]), 0.0)
    return chosen, scan


def _curve_sizes(n_rows: int, sizes: Iterable[int]) -> list[int]:
    """N of the curve: CURVE_POINTS steps up to the list's length or, on a long list, to
    twice its largest measured size (at least 1,000), plus the measured sizes."""
    sizes = [int(s) for s in sizes]
    end = min(n_rows, max(1000, 2 * max(sizes, default=0)))
    grid = np.linspace(0, end, CURVE_POINTS + 1).round().astype(int)
    return sorted({int(n) for n in grid} | {min(s, n_rows) for s in sizes})


@dataclass
class RankingResult:
    """What the backtest says about the action list (see `rank_backtest`)."""

    value_weight: float | None  # the auto w (None: no backtest list)
    metrics: list[dict[str, Any]] = field(default_factory=list)  # FIGURE_KEYS records
    curve: list[dict[str, Any]] = field(default_factory=list)  # the same, over a grid of N
    scan: list[dict[str, Any]] = field(default_factory=list)  # choose_value_weight's scan


def rank_backtest(
    frame: pd.DataFrame,
    predictions: pd.DataFrame | None,
    params: Params,
    *,
    owners: Mapping[Any, Any] | pd.Series | None = None,
) -> RankingResult:
    """The auto w and the ranking figures of every backtest cut-off, for the default ranking
    (`action_list` with the auto w when `value_weight: auto`) and by probability, at each N
    of `list_sizes` (metrics; `cut` names the N) and over a grid of N (curve). `owners`
    (account_id -> owner) counts the owners of per-owner tier capacities."""
    if predictions is None or predictions.empty:
        return RankingResult(None)
    require_columns(frame, [*OFFER_COLUMNS, "expansion_mrr_next"], "the ranking figures")
    lists = backtest_lists(frame, predictions, params)
    chosen, scan = choose_value_weight(lists, params)
    default = _default_ranking(params, chosen if chosen is not None else math.nan)
    out = RankingResult(chosen, scan=scan)
    for cutoff, rows in lists.groupby("cutoff", sort=True):
        sizes = list_sizes(params, _owner_count(rows["account_id"], owners))
        for ranking, (rank_by, weight) in zip(
            RANKINGS, (default, ("probability", 0.0)), strict=True
        ):
            ordered = list_order(rows, rank_by, weight)
            for cut, n in sizes.items():
                figures = list_figures(ordered, n)
                out.metrics.append(
                    {"cutoff": str(cutoff), "ranking": ranking, "cut": cut, **figures}
                )
            for n in _curve_sizes(len(ordered), sizes.values()):
                figures = list_figures(ordered, n)
                out.curve.append({"cutoff": str(cutoff), "ranking": ranking, "cut": "", **figures})
    return out


def ranking_table(
    metrics: list[dict[str, Any]], cut: str | None = None, mean: str | None = None
) -> pd.DataFrame:
    """Per cut-off and N (`cut`; default every one): n_rows, then each figure of the default
    ranking beside probability's (<figure>_default, <figure>_probability) and the hit-rate
    ratio (default / probability). `mean`: add a row of the means over the rows, with this
    as its cutoff."""
    frame = pd.DataFrame(metrics, columns=list(FIGURE_KEYS))
    if cut is not None:
        frame = frame.loc[frame["cut"] == cut]
    values = ["n_contacted", "expanders", "hit_rate", "expansion_mrr_captured"]
    values += ["expected_mrr_captured"]
    wide = frame.pivot(index=["cutoff", "cut"], columns="ranking", values=values)
    figures, rankings = (wide.columns.get_level_values(k) for k in (0, 1))
    wide.columns = pd.Index([f"{f}_{r}" for f, r in zip(figures, rankings, strict=True)])
    sizes = frame.drop_duplicates(["cutoff", "cut"]).set_index(["cutoff", "cut"])["n_rows"]
    wide = wide.join(sizes).reset_index()
    if {"hit_rate_default", "hit_rate_probability"} <= set(wide.columns):
        wide["hit_rate_ratio"] = wide["hit_rate_default"] / wide["hit_rate_probability"]
    if mean is not None and not wide.empty:
        means = wide.drop(columns=["cutoff", "cut"]).astype(float).mean()
        wide = pd.concat([wide, pd.DataFrame([{"cutoff": mean, "cut": cut, **means}])])
    return wide.reset_index(drop=True)


def ranking_label(params: Params, weight: float | None) -> str:
    """The default ranking in a few English words (chart legends, logs)."""
    rank_by = params.action_list.rank_by
    if rank_by == "balanced":
        return f"Default: p x offer MRR ^ {value_weight(params, weight):g}"
    return "Default: expected MRR" if rank_by == "expected_mrr" else "Default: probability"


def ranking_summary(
    metrics: list[dict[str, Any]], params: Params, weight: float | None
) -> dict[str, Any]:
    """The action-list figures in one flat mapping (for a JSON line): means over the cut-offs
    at N = `hit_rate_at` of both rankings, their hit-rate ratio and whether it meets
    `min_hit_rate_ratio`, and the w the default ranking uses."""
    table = ranking_table(metrics, f"top_{params.action_list.hit_rate_at}")
    rank_by, used = _default_ranking(params, weight if weight is not None else math.nan)
    out: dict[str, Any] = {
        "rank_by": rank_by,
        "value_weight": used if rank_by == "balanced" else None,
        "list_at": params.action_list.hit_rate_at,
        "cutoffs": len(table),
    }
    for figure in ("hit_rate", "expansion_mrr_captured", "expected_mrr_captured"):
        for ranking in RANKINGS:
            column = f"{figure}_{ranking}"
            out[f"{column}_mean"] = float(table[column].mean()) if column in table else math.nan
    base = out["hit_rate_probability_mean"]
    ratio = out["hit_rate_default_mean"] / base if base and base > 0 else math.nan
    out["hit_rate_ratio"] = ratio
    out["hit_rate_ratio_met"] = bool(ratio >= params.action_list.min_hit_rate_ratio - 1e-12)
    return out
