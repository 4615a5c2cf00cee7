"""score_accounts: schema, ranges, deciles, offers, touch tiers, suppression."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.params import Params
from models.score import (
    SCORE_COLUMNS,
    deciles,
    next_best_offers,
    score_accounts,
    suppression_reasons,
    touch_tiers,
)
from models.train import TrainedModel


@pytest.fixture(scope="module")
def scores(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params, as_of: date
) -> pd.DataFrame:
    return score_accounts(trained, snapshots, as_of, params)


def test_schema_ranges_and_order(
    scores: pd.DataFrame, trained: TrainedModel, snapshots: pd.DataFrame, as_of: date
) -> None:
    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert len(scores) == 30 and scores["account_id"].is_unique
    for col in ("p_expansion", "p_upsell", "p_cross_sell"):
        assert scores[col].between(0, 1).all()
    assert scores["p_expansion"].is_monotonic_decreasing
    assert scores["decile"].tolist() == sorted(scores["decile"].tolist())
    assert set(scores["decile"]) == set(range(1, 11))
    assert (scores["as_of"] == as_of).all()
    assert (scores["model_version"] == "unregistered").all()
    rows = snapshots[pd.to_datetime(snapshots["snapshot_date"]) == pd.Timestamp(as_of)]
    mrr = rows.set_index("account_id").loc[scores["account_id"], "mrr_usd"].to_numpy()
    expected = scores["p_expansion"].to_numpy() * mrr * trained.expansion_mrr_ratio
    assert np.allclose(scores["expected_expansion_mrr_usd"], expected)
    assert scores["touch_tier"].isin(["high_touch", "low_touch", "tech_touch"]).all()
    assert scores["next_best_offer"].str.match(r"^(cross-sell|upsell): ").all()
    assert (scores["is_suppressed"] == scores["suppression_reason"].notna()).all()
    assert scores.loc[~scores["is_suppressed"], "reason_1"].notna().all()


def test_scoring_is_deterministic(
    scores: pd.DataFrame,
    trained: TrainedModel,
    snapshots: pd.DataFrame,
    params: Params,
    as_of: date,
) -> None:
    shuffled = snapshots.sample(frac=1.0, random_state=3)
    again = score_accounts(trained, shuffled, str(as_of), params)
    pd.testing.assert_frame_equal(scores, again)


def test_inactive_and_unseen_categories(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params, as_of: date
) -> None:
    frame = snapshots.copy()
    at = pd.to_datetime(frame["snapshot_date"]) == pd.Timestamp(as_of)
    frame.loc[at & (frame["account_id"] == "A0000"), "is_active"] = False
    frame.loc[at, "segment"] = "galactic"
    frame.loc[at, "country"] = None
    out = score_accounts(trained, frame, as_of, params)
    assert len(out) == 29 and "A0000" not in set(out["account_id"])
    assert out["p_expansion"].between(0, 1).all()


def test_reasons_only_for_top_n_unsuppressed(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params, as_of: date
) -> None:
    out = score_accounts(trained, snapshots, as_of, params, reasons_for_top_n=4)
    with_reasons = out[out["reason_codes"].notna()]
    assert len(with_reasons) <= 4
    expected = out.loc[~out["is_suppressed"], "account_id"].head(4).tolist()
    assert set(with_reasons["account_id"]) <= set(expected)
    assert not with_reasons["is_suppressed"].any()
    assert out.loc[out["is_suppressed"], "reason_1"].isna().all()


def test_reason_phrases_come_from_the_scoring_params(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params, as_of: date
) -> None:
    texts = ("text", "when_zero", "when_missing")
    reworded = {
        f: t.model_copy(update={k: f"[{f}]" for k in texts if getattr(t, k) is not None})
        for f, t in params.reasons.items()
    }
    out = score_accounts(trained, snapshots, as_of, params.model_copy(update={"reasons": reworded}))
    assert out["reason_codes"].notna().any()
    for _, row in out[out["reason_codes"].notna()].iterrows():
        shown = [r for r in row[["reason_1", "reason_2", "reason_3"]] if isinstance(r, str)]
        assert shown == [f"[{f}]" for f in row["reason_codes"].split(",")]
    hidden = {f: t.model_copy(update={"actionable": False}) for f, t in params.reasons.items()}
    out = score_accounts(trained, snapshots, as_of, params.model_copy(update={"reasons": hidden}))
    assert out[["reason_1", "reason_2", "reason_3", "reason_codes"]].isna().all().all()


def test_suppression_rules(params: Params) -> None:
    frame = pd.DataFrame(
        {
            "urgent_tickets_open": [1, 0, 0, 0, None, 2],
            "days_since_last_contraction": [None, 30, None, None, None, 10],
            "days_since_last_activity": [50, 50, 5, 5, None, 5],
            "opportunities_open": [0, 0, 1, 0, None, 1],
            "invoices_overdue_open": pd.array([0, 0, 0, 0, None, 1], dtype="Int64"),
        }
    )
    out = suppression_reasons(frame, params).tolist()
    assert out[:5] == [
        "open urgent ticket",
        "recent contraction",
        "open opportunity being worked",
        None,  # recent activity but no open opportunity
        None,  # nulls never suppress
    ]
    assert out[5] == (
        "open urgent ticket; recent contraction; open opportunity being worked; overdue invoice"
    )
    with pytest.raises(ValueError, match="opportunities_open"):
        suppression_reasons(frame.drop(columns=["opportunities_open"]), params)


def test_touch_tiers(params: Params) -> None:
    frame = pd.DataFrame(
        {
            "mrr_usd": [100.0, 9000.0, 1500.0, 100.0, None],
            "segment": ["enterprise", "smb", "smb", "smb", "mid_market"],
        }
    )
    assert touch_tiers(frame, params).tolist() == [
        "high_touch",
        "high_touch",
        "low_touch",
        "tech_touch",
        "low_touch",
    ]


def test_next_best_offers(params: Params) -> None:
    frame = pd.DataFrame(
        {
            "top_companion_product_name": ["Analytics", "Analytics", None, None, "Analytics"],
            "companion_products_not_held": [1, 1, 0, 0, 0],
            "is_top_tier": [False, False, True, False, False],
            "next_tier_plan_name": ["Growth", "Growth", None, "Growth", "Scale"],
            "seat_utilization_30d": [0.5, 0.5, 0.5, 0.95, 0.2],
        }
    )
    probs = pd.DataFrame(
        {"p_cross_sell": [0.4, 0.1, 0.4, 0.4, 0.4], "p_upsell": [0.2, 0.3, 0.2, 0.2, 0.2]}
    )
    assert next_best_offers(frame, probs, params).tolist() == [
        "cross-sell: Analytics",
        "upsell: Growth",
        "upsell: more seats",
        "upsell: more seats",
        "upsell: Scale",
    ]


def test_deciles() -> None:
    assert deciles(3).tolist() == [1, 4, 7]
    assert deciles(20).tolist() == [d for d in range(1, 11) for _ in range(2)]
    assert deciles(0).tolist() == []
