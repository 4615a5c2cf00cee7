"""next_best_offers: the upsell or the cross-sell of account_offers, its MRR and its text."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.business import Business
from models.offers import OFFER_COLUMNS, next_best_offers
from models.params import Params, load_params

# One row per case: a next tier lifting storage, one lifting a limit to unlimited, more seats,
# two add-on packs, a next tier that changes no limit, a cross-sell only, nothing at all.
ROWS = [
    ("tier", "Growth", None, 250.0, "widget_gb", 100.0, 1000.0, "Analytics", 150.0),
    ("tier", "Enterprise", None, 400.0, "widget_calls", 2_500_000.0, None, None, None),
    ("units", None, 25, 625.0, "widget_users", 100.0, 125.0, None, None),
    ("addon", "Data Pack", 2, 6800.0, "widget_gb", 50_000.0, 90_000.0, None, None),
    ("tier", "Scale", None, 90.0, None, None, None, None, None),
    (None, None, None, None, None, None, None, "CPQ", 700.0),
    (None, None, None, None, None, None, None, None, None),
]


def _frame() -> pd.DataFrame:
    frame = pd.DataFrame(ROWS, columns=list(OFFER_COLUMNS), index=[f"A{i}" for i in range(7)])
    frame["upsell_units"] = frame["upsell_units"].astype("Int64")
    return frame


def _probs(p_upsell: float, p_cross_sell: float, n: int = len(ROWS)) -> pd.DataFrame:
    return pd.DataFrame(
        {"p_expansion": 0.5, "p_upsell": [p_upsell] * n, "p_cross_sell": [p_cross_sell] * n},
        index=[f"A{i}" for i in range(n)],
    )


@pytest.fixture(scope="module")
def offer_params(business: Business) -> Params:
    """params.yaml with the test business's metric labels in English."""
    return load_params().with_usage_features(business, [])


def test_every_kind_of_offer_says_what_changes_in_english(offer_params: Params) -> None:
    out = next_best_offers(_frame(), _probs(0.4, 0.1), offer_params)
    assert out["next_best_offer"].tolist() == [
        "upsell: Growth (widget storage 100 → 1,000 GB)",
        "upsell: Enterprise (widget calls 2,500,000 calls → unlimited)",
        "upsell: +25 seats",
        "upsell: Data Pack x2 (widget storage 50,000 → 90,000 GB)",
        "upsell: Scale",
        "cross-sell: CPQ",
        None,
    ]
    assert out["offer_type"].tolist() == [
        "upsell_tier",
        "upsell_tier",
        "upsell_units",
        "upsell_addon",
        "upsell_tier",
        "cross_sell",
        None,
    ]
    expected_mrr = [250.0, 400.0, 625.0, 6800.0, 90.0, 700.0, math.nan]
    np.testing.assert_allclose(out["offer_mrr"], expected_mrr)
    np.testing.assert_allclose(
        out["expected_expansion_mrr"], [100.0, 160.0, 250.0, 2720.0, 36.0, 70.0, 0.0]
    )
    assert list(out.index) == list(_frame().index)


def test_texts_in_japanese(business: Business) -> None:
    params = load_params().with_usage_features(business, [], "ja").localized("ja")
    frame = _frame().assign(
        upsell_limit_metric=lambda f: f["upsell_limit_metric"].replace("widget_gb", "widget_users")
    )
    out = next_best_offers(frame, _probs(0.4, 0.1), params, locale="ja")
    assert out["next_best_offer"].tolist()[:6] == [
        "アップセル: Growth（ウィジェット利用者 100→1,000人）",  # noqa: RUF001
        "アップセル: Enterprise（widget calls 2,500,000calls→無制限）",  # noqa: RUF001
        "アップセル: 25席追加",
        "アップセル: Data Pack ×2（ウィジェット利用者 50,000→90,000人）",  # noqa: RUF001
        "アップセル: Scale",
        "クロスセル: CPQ",
    ]


def test_a_metric_without_a_declaration_prints_its_name(params: Params) -> None:
    bare = params.model_copy(update={"metric_texts": {}})
    out = next_best_offers(_frame().iloc[:1], _probs(0.4, 0.1, 1), bare)
    assert out["next_best_offer"].tolist() == ["upsell: Growth (widget_gb 100 → 1,000)"]


def test_the_larger_expected_mrr_wins_or_the_larger_probability(offer_params: Params) -> None:
    frame = _frame().iloc[:1]  # upsell 250, cross-sell 150
    by_value = next_best_offers(frame, _probs(0.2, 0.3, 1), offer_params)
    assert by_value["offer_type"].tolist() == ["upsell_tier"]  # 50 > 45
    assert by_value["expected_expansion_mrr"].tolist() == [pytest.approx(50.0)]
    cross = next_best_offers(frame, _probs(0.1, 0.3, 1), offer_params)
    assert cross["offer_type"].tolist() == ["cross_sell"]  # 25 < 45
    assert cross["offer_mrr"].tolist() == [150.0]
    assert cross["next_best_offer"].tolist() == ["cross-sell: Analytics"]
    by_p = offer_params.model_copy(
        update={"offers": offer_params.offers.model_copy(update={"choose_by": "probability"})}
    )
    assert next_best_offers(frame, _probs(0.2, 0.3, 1), by_p)["offer_type"].tolist() == [
        "cross_sell"
    ]


def test_a_missing_candidate_never_wins(offer_params: Params) -> None:
    frame = _frame().iloc[[1, 5, 6]]  # only an upsell, only a cross-sell, nothing
    for probs in (_probs(0.0, 0.9, 3), _probs(0.9, 0.0, 3)):
        probs.index = frame.index
        out = next_best_offers(frame, probs, offer_params)
        assert out["offer_type"].tolist() == ["upsell_tier", "cross_sell", None]
        assert out["next_best_offer"].iloc[2] is None
        assert math.isnan(out["offer_mrr"].iloc[2])
        assert out["expected_expansion_mrr"].iloc[2] == 0.0


def test_an_offer_worth_nothing_is_no_offer(offer_params: Params) -> None:
    frame = _frame().iloc[:1].assign(upsell_offer_mrr=0.0, cross_sell_offer_mrr=-5.0)
    out = next_best_offers(frame, _probs(0.5, 0.5, 1), offer_params)
    assert out["offer_type"].tolist() == [None]
    assert out["expected_expansion_mrr"].tolist() == [0.0]


def test_missing_offer_columns_are_named(offer_params: Params) -> None:
    with pytest.raises(ValueError, match="upsell_offer_mrr"):
        next_best_offers(_frame().drop(columns="upsell_offer_mrr"), _probs(0.1, 0.1), offer_params)
