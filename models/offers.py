"""The next-best offer of each account: the upsell or the cross-sell, its MRR and its text.

What can be offered and what it is worth come from the catalogue, computed in dbt
(`marts.account_offers`, carried by `account_snapshots`; rules in dbt_project/DECISIONLOG.md,
"Offers"): per account, one upsell candidate (`upsell_offer_kind`: `tier` the next tier at the
account's billing period, `units` more units of its per-seat core plan, `addon` packs of an
add-on that relieve a pressed limit) and one cross-sell candidate (a product it lacks), each
with the monthly MRR it adds at list price in the reporting currency, always > 0. Nothing is
learned here.

`next_best_offers` chooses between the two: with `offers.choose_by: expected_mrr` (params.yaml)
the larger of p_upsell x upsell MRR and p_cross_sell x cross-sell MRR, with `probability` the
larger of p_upsell and p_cross_sell; a candidate that does not exist never wins, and an
account with neither has no offer (offer_type None, offer_mrr NaN, expected 0). The text says
what changes for the customer, in the run's language (`offers:` in params.yaml and
models/phrases/<locale>.yaml), with the metric's label and unit from the business declaration
(`Params.metric_texts`): "upsell: Growth (storage 100 → 1,000 GB)", "upsell: +25 seats",
"upsell: Data Pack x2 (records 50,000 → 90,000 GB)", "cross-sell: Analytics".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.features import as_float, require_columns
from models.params import Offers, Params
from models.phrasebook import DEFAULT_LOCALE, load_phrasebook

OFFER_TYPES = ("upsell_tier", "upsell_units", "upsell_addon", "cross_sell")
# The columns of account_snapshots (dbt: account_offers) an offer is made from.
OFFER_COLUMNS = (
    "upsell_offer_kind",
    "upsell_plan_name",
    "upsell_units",
    "upsell_offer_mrr",
    "upsell_limit_metric",
    "upsell_limit_from",
    "upsell_limit_to",
    "cross_sell_product_name",
    "cross_sell_offer_mrr",
)
# what an upsell's text is made of, after its offer_type (_Writer.upsell)
_UPSELL_TEXT_COLUMNS = (
    "upsell_plan_name",
    "upsell_units",
    "upsell_limit_metric",
    "upsell_limit_from",
    "upsell_limit_to",
)
# upsell_offer_kind -> offer_type
UPSELL_TYPES = {"tier": "upsell_tier", "units": "upsell_units", "addon": "upsell_addon"}


@dataclass(frozen=True)
class OfferValues:
    """Legacy: the per-seat offer values models learned before offers came from the catalogue.
    Models saved then still carry them (flows/registry.py loads them); nothing uses them."""

    seat_price_by_tier: dict[int, float] = field(default_factory=dict)
    extra_seat_fraction: float = math.nan
    cross_sell_mrr_per_seat: dict[str, dict[str, float]] = field(default_factory=dict)
    n_rows: dict[str, int] = field(default_factory=dict)

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


def _text(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), None)


@dataclass(frozen=True)
class _Writer:
    """Offer texts in one language: the labels, the metrics' words and number formatting."""

    labels: Offers
    metric_texts: dict[str, tuple[str, str]]  # metric -> (label, unit)
    unit_separator: str
    group: str
    decimal: str

    def number(self, value: float) -> str:
        """A limit as written in this language: whole numbers grouped (1,000), else one
        decimal."""
        whole = round(value)
        if abs(value - whole) < 1e-9:
            digits = f"{whole:,}"
        else:
            digits = f"{value:,.1f}".replace(".", "\x00")
        return digits.replace(",", self.group).replace("\x00", self.decimal)

    def change(self, metric: Any, before: Any, after: Any) -> str:
        """What the offer does to a limit (" (storage 100 → 1,000 GB)"); "" when none."""
        if metric is None or before is None or pd.isna(before):
            return ""
        label, unit = self.metric_texts.get(str(metric), (str(metric), ""))
        unit = self.unit_separator + unit if unit else ""
        if after is None or pd.isna(after):
            return self.labels.limit_unlimited.format(
                label=label, before=self.number(float(before)), unit=unit
            )
        return self.labels.limit_change.format(
            label=label,
            before=self.number(float(before)),
            after=self.number(float(after)),
            unit=unit,
        )

    def upsell(self, kind: str, plan: Any, units: Any, metric: Any, before: Any, after: Any) -> str:
        change = self.change(metric, before, after)
        if kind == "upsell_units":
            return self.labels.upsell_units.format(units=self.number(float(units)))
        if kind == "upsell_addon":
            count = self.number(float(units)) if units is not None and pd.notna(units) else "1"
            return self.labels.upsell_addon.format(plan=plan, units=count, change=change)
        return self.labels.upsell_tier.format(plan=plan, change=change)


def _writer(params: Params, locale: str) -> _Writer:
    book = load_phrasebook(locale)
    return _Writer(
        labels=params.localized(locale).offers,
        metric_texts={m: (t.label, t.unit) for m, t in params.metric_texts.items()},
        unit_separator=book.usage.unit_separator,
        group=book.money.group,
        decimal=book.money.decimal,
    )


def next_best_offers(
    frame: pd.DataFrame,
    probs: pd.DataFrame,
    params: Params,
    *,
    locale: str = DEFAULT_LOCALE,
) -> pd.DataFrame:
    """Per account (index of `frame`): offer_type, next_best_offer (text in `locale`),
    offer_mrr (NaN: no offer) and expected_expansion_mrr (the chosen offer's probability x its
    MRR; 0.0: no offer). `frame` has OFFER_COLUMNS (account_snapshots), `probs` p_upsell and
    p_cross_sell; amounts are in the currency of the snapshot's money columns. The choice and
    the texts are described in the module docstring."""
    require_columns(frame, list(OFFER_COLUMNS), "the next best offer")
    kind = _text(frame["upsell_offer_kind"]).map(UPSELL_TYPES)
    up_mrr = as_float(frame["upsell_offer_mrr"], "upsell_offer_mrr")
    cross_mrr = as_float(frame["cross_sell_offer_mrr"], "cross_sell_offer_mrr")
    product = _text(frame["cross_sell_product_name"])
    has_up = kind.notna() & up_mrr.gt(0.0)
    has_cross = product.notna() & cross_mrr.gt(0.0)
    p_up = probs["p_upsell"].astype("float64")
    p_cross = probs["p_cross_sell"].astype("float64")
    exp_up, exp_cross = p_up * up_mrr, p_cross * cross_mrr

    if params.offers.choose_by == "expected_mrr":
        cross_better = exp_cross.ge(exp_up)
    else:
        cross_better = p_cross.ge(p_up)
    cross_wins = has_cross & (~has_up | cross_better)
    up_wins = has_up & ~cross_wins

    up, cross = up_wins.to_numpy(), cross_wins.to_numpy()
    offer_type = np.full(len(frame), None, dtype=object)
    offer_type[up] = kind[up_wins].to_numpy()
    offer_type[cross] = "cross_sell"
    offer_mrr = up_mrr.where(up_wins, cross_mrr.where(cross_wins, np.nan))
    expected = exp_up.where(up_wins, exp_cross.where(cross_wins, 0.0))

    writer = _writer(params, locale)
    upsell = frame.loc[up_wins, list(_UPSELL_TEXT_COLUMNS)].astype(object)
    upsell = upsell.where(upsell.notna(), None)
    keys = zip(kind[up_wins], *(upsell[c] for c in _UPSELL_TEXT_COLUMNS), strict=True)
    cache: dict[tuple[Any, ...], str] = {}  # one text per distinct offer, not per row
    text = np.full(len(frame), None, dtype=object)
    text[up] = [cache.get(k) or cache.setdefault(k, writer.upsell(*k)) for k in keys]
    text[cross] = [writer.labels.cross_sell.format(product=p) for p in product[cross_wins]]
    return pd.DataFrame(
        {
            "offer_type": pd.Series(offer_type, index=frame.index, dtype=object),
            "next_best_offer": pd.Series(text, index=frame.index, dtype=object),
            "offer_mrr": offer_mrr.astype("float64"),
            "expected_expansion_mrr": expected.astype("float64"),
        },
        index=frame.index,
    )
