"""Next-best offer per account and the MRR it would add.

A "seat" here is a unit of the core plan: `core_quantity` (seats on a per-seat plan, 1 on a
flat tier). Three kinds of offer (`offer_type`):

* `cross_sell`: the account's usual companion product it does not hold yet
  (`top_companion_product_name`). Value: core_quantity x the median expansion MRR per unit
  that training accounts of the same segment added in windows where they cross-sold (and did
  not upsell) while that product was their usual companion; fallbacks: the product over all
  segments, then every cross-sell (a group needs `expected_mrr.min_group_rows` rows). Per
  unit because add-ons are priced per unit on per-seat plans (on the default demo, log
  cross-sell MRR and log seats correlate at 0.96).
* `upsell_seats`: more units of the core plan (top tier; or `per_unit_limit_utilization`,
  the account's highest utilization of a limit that more units raise, at or above
  `offers.unit_utilization_threshold`; or no next tier known). Value: the account's price per
  unit x the expected extra units; expected extra units = core_quantity x the median growth
  (expansion MRR / (price per unit x units)) of training accounts that upsold (and did not
  cross-sell) while "more units" was their upsell offer, rounded up, at least
  `expected_mrr.min_extra_seats`.
* `upsell_tier`: the next core tier (`next_tier_plan_name`). Value: the price difference per
  unit between the tiers x core_quantity. Tier prices per unit are medians of
  mrr_usd / core_quantity over training rows of accounts holding only the core product
  (so add-ons do not inflate them), scaled to the account's own price level.

An account's price per unit is its own mrr_usd / core_quantity when it holds only the core
product, else the tier median. Expected expansion MRR = probability of that kind of offer
(p_cross_sell or p_upsell) x the offer's MRR. Values come from training rows only (labels
known at training time), are stored with the model (under their earlier per-seat names), and
are never a feature.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.features import as_float, require_columns
from models.params import Params

OFFER_TYPES = ("cross_sell", "upsell_tier", "upsell_seats")
OFFER_COLUMNS = (
    "top_companion_product_name",
    "companion_products_not_held",
    "is_top_tier",
    "next_tier_plan_name",
    "per_unit_limit_utilization",
    "core_quantity",
    "mrr_usd",
    "products_held",
    "core_tier_rank",
    "segment",
)
_ANY = "*"


def _text(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), None)


@dataclass(frozen=True)
class OfferValues:
    """What each kind of offer adds, learned from training rows (see the module docstring)."""

    seat_price_by_tier: dict[int, float] = field(default_factory=dict)
    extra_seat_fraction: float = math.nan
    # product -> segment -> MRR per unit of the core plan ("*" = any)
    cross_sell_mrr_per_seat: dict[str, dict[str, float]] = field(default_factory=dict)
    n_rows: dict[str, int] = field(default_factory=dict)  # rows behind each estimate

    def to_dict(self) -> dict[str, Any]:
        return {
            "seat_price_by_tier": {str(k): v for k, v in self.seat_price_by_tier.items()},
            "extra_seat_fraction": self.extra_seat_fraction,
            "cross_sell_mrr_per_seat": self.cross_sell_mrr_per_seat,
            "n_rows": self.n_rows,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> OfferValues:
        fraction = raw.get("extra_seat_fraction")
        return cls(
            seat_price_by_tier={int(k): float(v) for k, v in raw["seat_price_by_tier"].items()},
            extra_seat_fraction=math.nan if fraction is None else float(fraction),
            cross_sell_mrr_per_seat={
                p: {s: float(v) for s, v in by_segment.items()}
                for p, by_segment in raw["cross_sell_mrr_per_seat"].items()
            },
            n_rows={k: int(v) for k, v in raw.get("n_rows", {}).items()},
        )

    def cross_sell_per_seat(self, product: Any, segment: Any) -> float:
        """Typical cross-sell MRR per unit for `product` in `segment` (documented fallbacks)."""
        for key, seg in ((product, segment), (product, _ANY), (_ANY, _ANY)):
            value = self.cross_sell_mrr_per_seat.get(str(key), {}).get(str(seg))
            if value is not None:
                return value
        return math.nan


_NONE = "\x00none"  # stands for a missing value in the (product, segment) lookup


def _per_value(series: pd.Series, fn: Callable[[Any], Any], keep_none: bool = False) -> pd.Series:
    """`fn` of each value, computed once per distinct value; missing values give None, or with
    `keep_none` are passed to `fn` as None (a phrase with "None" in it, as before)."""
    missing = series.isna()
    distinct = series[~missing].unique()
    out = series.astype(object).map(dict(zip(distinct, map(fn, distinct), strict=True)))
    if keep_none and missing.any():
        out = out.where(~missing, fn(None))
    return out.where(~missing | keep_none, None)


def _candidates(frame: pd.DataFrame, params: Params) -> tuple[pd.Series, pd.Series]:
    """(has a cross-sell candidate, upsell would be more units rather than the next tier)."""
    companion = _text(frame["top_companion_product_name"])
    not_held = as_float(frame["companion_products_not_held"], "companion_products_not_held")
    has_cross = companion.notna() & not_held.ne(0.0) & not_held.notna()
    top_tier = as_float(frame["is_top_tier"], "is_top_tier").fillna(0.0).ne(0.0)
    utilization = as_float(frame["per_unit_limit_utilization"], "per_unit_limit_utilization")
    plan = _text(frame["next_tier_plan_name"])
    threshold = params.offers.unit_utilization_threshold
    more_seats = top_tier | utilization.ge(threshold).fillna(False) | plan.isna()
    return has_cross, more_seats


def _tier_prices(frame: pd.DataFrame) -> dict[int, float]:
    seats = as_float(frame["core_quantity"], "core_quantity")
    mrr = as_float(frame["mrr_usd"], "mrr_usd")
    core_only = as_float(frame["products_held"], "products_held").eq(1.0)
    tier = as_float(frame["core_tier_rank"], "core_tier_rank")
    ok = core_only & (seats > 0) & (mrr > 0) & tier.notna()
    price = (mrr / seats)[ok]
    medians = price.groupby(tier[ok].astype(int)).median()
    return {int(t): float(v) for t, v in zip(medians.index, medians.to_numpy(), strict=True)}


def seat_price(frame: pd.DataFrame, values: OfferValues) -> pd.Series:
    """Each account's MRR per unit of its core plan (own price if core only, else its tier's
    median)."""
    seats = as_float(frame["core_quantity"], "core_quantity")
    mrr = as_float(frame["mrr_usd"], "mrr_usd")
    own = mrr / seats.where(seats > 0)
    core_only = as_float(frame["products_held"], "products_held").eq(1.0)
    tier = as_float(frame["core_tier_rank"], "core_tier_rank")
    median = tier.map(lambda t: values.seat_price_by_tier.get(int(t)) if pd.notna(t) else None)
    median = pd.to_numeric(median, errors="coerce").astype("float64")
    return own.where(core_only | median.isna(), median)


def fit_offer_values(frame: pd.DataFrame, params: Params) -> OfferValues:
    """Offer values from training rows (active, complete labels; see the module docstring)."""
    require_columns(frame, [*OFFER_COLUMNS, "expansion_mrr_usd_next"], "offer values")
    upsell = frame[params.targets["upsell"]].astype(bool)
    cross = frame[params.targets["cross_sell"]].astype(bool)
    gain = as_float(frame["expansion_mrr_usd_next"], "expansion_mrr_usd_next")
    has_cross, more_seats = _candidates(frame, params)
    prices = _tier_prices(frame)
    values = OfferValues(seat_price_by_tier=prices)
    core_only = as_float(frame["products_held"], "products_held").eq(1.0)
    n_rows: dict[str, int] = {"seat_price": int(core_only.sum())}

    seats = as_float(frame["core_quantity"], "core_quantity")
    base = seat_price(frame, values) * seats
    seat_rows = upsell & ~cross & more_seats & (base > 0) & gain.gt(0)
    growth = (gain[seat_rows] / base[seat_rows]).clip(0.0, params.expected_mrr.max_ratio)
    fraction = float(growth.median()) if len(growth) else math.nan
    n_rows["upsell_seats"] = int(seat_rows.sum())

    cross_rows = cross & ~upsell & has_cross & gain.gt(0) & seats.gt(0)
    product = _text(frame["top_companion_product_name"])[cross_rows].astype(str)
    segment = _text(frame["segment"])[cross_rows].fillna("unknown").astype(str)
    per_seat = gain[cross_rows] / seats[cross_rows]
    rows = pd.DataFrame({"product": product, "segment": segment, "gain": per_seat})
    minimum = params.expected_mrr.min_group_rows
    table: dict[str, dict[str, float]] = {}
    groups = [
        rows.groupby(["product", "segment"])["gain"],
        rows.assign(segment=_ANY).groupby(["product", "segment"])["gain"],
        rows.assign(product=_ANY, segment=_ANY).groupby(["product", "segment"])["gain"],
    ]
    for grouped in groups:
        stats = grouped.agg(["median", "size"]).reset_index()
        for prod, seg, median, size in stats.itertuples(index=False, name=None):
            if size >= minimum:
                table.setdefault(str(prod), {})[str(seg)] = float(median)
    n_rows["cross_sell"] = int(cross_rows.sum())
    return OfferValues(prices, fraction, table, n_rows)


def next_best_offers(
    frame: pd.DataFrame,
    probs: pd.DataFrame,
    params: Params,
    values: OfferValues | None = None,
    legacy_ratio: float = math.nan,
) -> pd.DataFrame:
    """Per account: offer_type, next_best_offer (text), offer_mrr_usd, expected_expansion_mrr_usd.

    The upsell candidate is more units of the core plan or the next tier (rule in the module docstring); the
    cross-sell candidate exists when a usual companion is not held. With
    `offers.choose_by: expected_mrr` the candidate with the larger expected MRR wins (a
    candidate without a value loses to one with a value; neither: by probability), with
    `probability` the one with the larger p_cross_sell / p_upsell. `values=None` (models saved
    before offer values existed): offer MRR = mrr_usd x `legacy_ratio`, expected = p_expansion x
    that.
    """
    require_columns(frame, list(OFFER_COLUMNS), "the next best offer")
    offers = params.offers
    has_cross, more_seats = _candidates(frame, params)
    companion = _text(frame["top_companion_product_name"])
    plan = _text(frame["next_tier_plan_name"])
    seats = as_float(frame["core_quantity"], "core_quantity")
    mrr = as_float(frame["mrr_usd"], "mrr_usd")
    p_up = probs["p_upsell"].astype("float64")
    p_cross = probs["p_cross_sell"].astype("float64")

    if values is None:
        flat = mrr * legacy_ratio
        up_value, cross_value = flat, flat
        extra = pd.Series(np.nan, index=frame.index)
    else:
        price = seat_price(frame, values)
        fraction = values.extra_seat_fraction
        extra = np.ceil(seats * fraction).clip(lower=params.expected_mrr.min_extra_seats)
        extra = extra.where(seats.notna() & np.isfinite(fraction))
        seat_value = price * extra
        tier = as_float(frame["core_tier_rank"], "core_tier_rank")
        here = _per_value(tier, lambda t: values.seat_price_by_tier.get(int(t))).astype("float64")
        up = _per_value(tier, lambda t: values.seat_price_by_tier.get(int(t) + 1)).astype("float64")
        tier_value = seats * (up - here).clip(lower=0.0) * (price / here)
        # No price known for the next tier: offer more units instead.
        more_seats = more_seats | tier_value.isna()
        up_value = seat_value.where(more_seats, tier_value)
        segment = _text(frame["segment"])
        pairs = pd.MultiIndex.from_arrays([companion.fillna(_NONE), segment.fillna(_NONE)])
        unique = pairs.unique()
        rates = [
            values.cross_sell_per_seat(*(None if v == _NONE else v for v in pair))
            for pair in unique
        ]
        per_seat = pd.Series(
            np.asarray(rates, dtype="float64")[unique.get_indexer(pairs)],
            index=frame.index,
            dtype="float64",
        )
        cross_value = per_seat * seats

    exp_up, exp_cross = p_up * up_value, p_cross * cross_value
    if offers.choose_by == "expected_mrr":
        by_prob = p_cross.ge(p_up)
        cross_wins = exp_cross.ge(exp_up) | (exp_up.isna() & exp_cross.notna())
        cross_wins = cross_wins.where(exp_up.notna() | exp_cross.notna(), by_prob)
    else:
        cross_wins = p_cross.ge(p_up)
    cross_wins = cross_wins.astype(bool) & has_cross

    offer_type = np.where(
        cross_wins, "cross_sell", np.where(more_seats, "upsell_seats", "upsell_tier")
    )
    # The phrases, formatted once per distinct product / seat count / plan (not per row).
    seat_text = _per_value(extra, lambda n: offers.upsell_seats.format(seats=f"{int(n):,}"))
    text = np.select(
        [offer_type == "cross_sell", offer_type == "upsell_seats"],
        [
            _per_value(companion, lambda c: offers.cross_sell.format(product=c), keep_none=True),
            seat_text.fillna(offers.upsell_seats_unknown),
        ],
        _per_value(plan, lambda c: offers.upsell_tier.format(plan=c), keep_none=True),
    )
    offer_mrr = up_value.where(~cross_wins, cross_value)
    if values is None:
        expected = probs["p_expansion"].astype("float64") * offer_mrr
    else:
        expected = exp_up.where(~cross_wins, exp_cross)
    return pd.DataFrame(
        {
            "offer_type": pd.Series(offer_type, index=frame.index, dtype=object),
            "next_best_offer": pd.Series(text, index=frame.index, dtype=object),
            "offer_mrr_usd": offer_mrr.clip(lower=0.0),
            "expected_expansion_mrr_usd": expected.clip(lower=0.0),
        },
        index=frame.index,
    )
