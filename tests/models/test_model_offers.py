"""Offer values learned from training rows, and what each offer adds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.offers import OfferValues, fit_offer_values, next_best_offers, seat_price
from models.params import Params


def _rows() -> pd.DataFrame:
    """Training rows: core-only accounts set tier prices; upsells and cross-sells set values."""
    n = 8
    return pd.DataFrame(
        {
            "account_id": [f"A{i}" for i in range(n)],
            "segment": ["smb"] * 4 + ["enterprise"] * 4,
            "core_quantity": [10, 10, 20, 20, 100, 100, 100, 100],
            "mrr_usd": [250.0, 500.0, 500.0, 1000.0, 2500.0, 5000.0, 9000.0, 9000.0],
            "products_held": [1, 1, 1, 1, 1, 1, 2, 2],
            "core_tier_rank": [1, 2, 1, 2, 1, 2, 2, 2],
            "top_companion_product_name": [None, None, None, None, None, None, "CPQ", "CPQ"],
            "companion_products_not_held": [0, 0, 0, 0, 0, 0, 1, 1],
            "is_top_tier": [False] * n,
            "next_tier_plan_name": ["Growth", "Scale", "Growth", "Scale"] * 2,
            "per_unit_limit_utilization": [0.9, 0.9, 0.9, 0.5, 0.9, 0.9, 0.5, 0.5],
            "label_expansion": [True, True, True, False, True, False, True, True],
            "label_upsell": [True, True, True, False, True, False, False, False],
            "label_cross_sell": [False, False, False, False, False, False, True, True],
            "expansion_mrr_usd_next": [50.0, 100.0, 150.0, 0.0, 250.0, 0.0, 1000.0, 2000.0],
        }
    )


@pytest.fixture()
def small_groups(params: Params) -> Params:
    return params.model_copy(
        update={"expected_mrr": params.expected_mrr.model_copy(update={"min_group_rows": 2})}
    )


def test_fit_offer_values(small_groups: Params) -> None:
    values = fit_offer_values(_rows(), small_groups)
    # core-only rows: tier 1 at 25/seat (250/10, 500/20, 2500/100), tier 2 at 50/seat
    assert values.seat_price_by_tier == {1: 25.0, 2: 50.0}
    # pure seat upsells: 50 / 250, 100 / 500, 150 / 500, 250 / 2500 -> median of growth
    assert values.extra_seat_fraction == pytest.approx(np.median([0.2, 0.2, 0.3, 0.1]))
    # pure cross-sells of CPQ in enterprise: 1000 / 100 and 2000 / 100 per seat -> median 15
    assert values.cross_sell_mrr_per_seat["CPQ"]["enterprise"] == pytest.approx(15.0)
    assert values.cross_sell_mrr_per_seat["CPQ"]["*"] == pytest.approx(15.0)
    assert values.cross_sell_per_seat("CPQ", "smb") == pytest.approx(15.0)  # falls back
    assert values.cross_sell_per_seat("Analytics", "smb") == pytest.approx(15.0)  # all
    assert OfferValues.from_dict(values.to_dict()) == values


def test_groups_below_the_minimum_fall_back(params: Params) -> None:
    strict = params.model_copy(
        update={"expected_mrr": params.expected_mrr.model_copy(update={"min_group_rows": 3})}
    )
    values = fit_offer_values(_rows(), strict)
    assert values.cross_sell_mrr_per_seat == {}
    assert math.isnan(values.cross_sell_per_seat("CPQ", "enterprise"))


def test_offer_mrr_per_offer_type(params: Params) -> None:
    values = OfferValues(
        seat_price_by_tier={1: 25.0, 2: 50.0, 3: 80.0},
        extra_seat_fraction=0.25,
        cross_sell_mrr_per_seat={"CPQ": {"*": 15.0}, "*": {"*": 10.0}},
    )
    frame = _rows().iloc[[0, 3, 6]].reset_index(drop=True)
    frame.loc[0, "next_tier_plan_name"] = None  # no next tier known: seats
    probs = pd.DataFrame(
        {
            "p_expansion": [0.5, 0.5, 0.5],
            "p_upsell": [0.4, 0.3, 0.1],
            "p_cross_sell": [0.0, 0.0, 0.6],
        }
    )
    out = next_best_offers(frame, probs, params, values)
    assert out["offer_type"].tolist() == ["upsell_seats", "upsell_tier", "cross_sell"]
    # seats: own price 25/seat x ceil(10 x 0.25) = 3 seats
    # tier: 20 seats x (80 - 50) x (own 50 / tier 50); cross-sell: 100 seats x 15
    assert out["offer_mrr_usd"].tolist() == pytest.approx([75.0, 600.0, 1500.0])
    assert out["next_best_offer"].tolist() == [
        "upsell: +3 seats",
        "upsell: Scale",
        "cross-sell: CPQ",
    ]
    expected = [0.4 * 75.0, 0.3 * 600.0, 0.6 * 1500.0]
    assert out["expected_expansion_mrr_usd"].tolist() == pytest.approx(expected)


def test_offer_chosen_by_expected_mrr(params: Params) -> None:
    values = OfferValues(
        seat_price_by_tier={1: 25.0, 2: 50.0, 3: 80.0},
        extra_seat_fraction=0.25,
        cross_sell_mrr_per_seat={"*": {"*": 1.0}},
    )
    frame = _rows().iloc[[6]].reset_index(drop=True)  # tier 2, CPQ not held, 100 seats
    probs = pd.DataFrame({"p_expansion": [0.5], "p_upsell": [0.2], "p_cross_sell": [0.4]})
    # upsell to tier 3: 0.2 x 100 seats x (80 - 50) = 600 beats cross-sell 0.4 x 100 x 1 = 40
    out = next_best_offers(frame, probs, params, values)
    assert out["offer_type"].tolist() == ["upsell_tier"]
    by_p = params.model_copy(
        update={"offers": params.offers.model_copy(update={"choose_by": "probability"})}
    )
    assert next_best_offers(frame, probs, by_p, values)["offer_type"].tolist() == ["cross_sell"]


def test_seat_price(params: Params) -> None:
    values = OfferValues(seat_price_by_tier={1: 25.0, 2: 50.0})
    frame = _rows()
    price = seat_price(frame, values)
    assert price.iloc[0] == 25.0  # core only: its own price
    assert price.iloc[6] == 50.0  # holds add-ons: the tier median
