"""Reasons: top positive contributions as phrases with their values, one per concept."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.features import prepare_features, scoring_frame
from models.params import Params, ReasonTemplate
from models.reasons import phrase, reasons_from_contributions, shown_as_reason, top_reasons
from models.train import TrainedModel


def _phrase(params: Params, feature: str, value: object, **row: object) -> str | None:
    return phrase(params.reasons[feature], value, dict(row))


def test_phrases_show_the_value(params: Params) -> None:
    assert (
        _phrase(params, "per_unit_limit_utilization", 0.92)
        == "at 92% of a plan limit that grows with the units bought"
    )
    assert _phrase(params, "max_limit_utilization", 1.3) == "closest plan limit at 130%"
    assert _phrase(params, "days_to_renewal", 41.0) == "renewal in 41 days"
    assert _phrase(params, "months_to_renewal", 1.0) == "renewal in 1 month"
    assert _phrase(params, "months_to_renewal", 0.0) == "renewal this month"
    assert _phrase(params, "is_monthly_term", 1.0) == "on a monthly term"
    assert _phrase(params, "is_monthly_term", 0.0) is None
    assert _phrase(params, "core_term_months", 12.0) == "on a 12-month term"
    assert _phrase(params, "widget_gb__utilization", 0.88) == "widget storage at 88% of plan limit"
    assert _phrase(params, "widget_users__trend_28d", 0.23) == "widget users up 23% over 4 weeks"
    assert (
        _phrase(params, "is_promoter_90d", 1.0, nps_latest=10.0)
        == "NPS promoter (10) in the last 90 days"
    )
    assert _phrase(
        params, "companion_products_not_held", 2.0, top_companion_product_name="Analytics"
    ) == ("does not yet hold Analytics, usually bought with its products")
    assert _phrase(params, "segment", "enterprise") == "enterprise segment"
    assert _phrase(params, "mrr_change_90d", -1234.4) == "MRR down $1,234 in 90 days"
    assert _phrase(params, "mrr", 1234.4) == "MRR of $1,234"
    assert _phrase(params, "meetings_90d", 1.0) == "1 meeting in 90 days"
    assert _phrase(params, "meetings_90d", 3.0) == "3 meetings in 90 days"


def test_amounts_are_in_the_reporting_currency(params: Params) -> None:
    change = params.reasons["mrr_change_90d"]
    assert phrase(change, -1234.4, {}, currency="JPY") == "MRR down ¥1,234 in 90 days"
    assert phrase(change, 98765.0, {}, currency="EUR") == "MRR up €98,765 in 90 days"
    assert phrase(params.reasons["mrr"], 5e6, {}, currency="XYZ") == "MRR of 5,000,000 XYZ"


def test_zero_and_missing_values(params: Params) -> None:
    assert _phrase(params, "is_promoter_90d", 0.0) is None  # "not a promoter" is no reason
    assert _phrase(params, "urgent_tickets_open", 0.0) == "no urgent tickets open"
    assert _phrase(params, "nps_latest", math.nan) is None
    assert _phrase(params, "days_since_last_expansion", math.nan) == "has not expanded before"
    assert _phrase(params, "segment", math.nan) is None
    template = ReasonTemplate(group="nps", text="NPS promoter ({nps_latest:.0f})")
    assert phrase(template, 1.0, {"nps_latest": math.nan}) == "NPS promoter (unknown)"
    assert phrase(template, 1.0, {}) == "NPS promoter (unknown)"


def test_shown_as_reason_agrees_with_phrase(params: Params) -> None:
    numbers = pd.Series([0.42, 0.0, math.nan, -3.0])
    text = pd.Series(pd.Categorical(["enterprise", None]))
    for feature in params.features.all:
        template = params.reasons[feature]
        values = text if feature in params.features.categorical else numbers
        expected = [template.actionable and phrase(template, v, {}) is not None for v in values]
        assert shown_as_reason(template, values).tolist() == expected, feature


def _scoring_rows(trained: TrainedModel, snapshots: pd.DataFrame, n: int) -> tuple:
    frame = scoring_frame(snapshots, "2026-02-15").head(n)
    X, _ = prepare_features(frame, trained.params, trained.categories)
    return frame, X


def test_top_reasons_one_actionable_reason_per_group(
    trained: TrainedModel, snapshots: pd.DataFrame
) -> None:
    frame, X = _scoring_rows(trained, snapshots, 8)
    reasons = top_reasons(trained, X, frame, n=3)
    assert list(reasons.columns) == ["reason_1", "reason_2", "reason_3", "reason_codes"]
    assert list(reasons.index) == list(X.index)
    contrib = np.asarray(trained.boosters["expansion"].predict(X, pred_contrib=True))[:, :-1]
    templates = trained.params.reasons
    group_of = np.array([templates[f].group for f in trained.features])
    position = {f: i for i, f in enumerate(trained.features)}
    assert reasons["reason_1"].notna().any()
    for i, (_, row) in enumerate(reasons.iterrows()):
        codes = row["reason_codes"].split(",") if isinstance(row["reason_codes"], str) else []
        assert all(contrib[i, position[c]] > 0 and templates[c].actionable for c in codes)
        groups = [templates[c].group for c in codes]
        assert len(set(groups)) == len(groups)
        totals = [contrib[i, group_of == g].clip(min=0).sum() for g in groups]
        assert totals == sorted(totals, reverse=True)
        phrases = [row[f"reason_{k}"] for k in range(1, 4) if isinstance(row[f"reason_{k}"], str)]
        assert len(phrases) == len(codes)
        assert row[[f"reason_{k}" for k in range(len(codes) + 1, 4)]].isna().all()


def test_top_reasons_phrase_contains_value(trained: TrainedModel, snapshots: pd.DataFrame) -> None:
    frame, X = _scoring_rows(trained, snapshots, 30)
    reasons = top_reasons(trained, X, frame, n=3)
    hits = 0
    for idx, row in reasons.iterrows():
        codes = row["reason_codes"].split(",") if row["reason_codes"] else []
        shown = row[["reason_1", "reason_2", "reason_3"]].tolist()
        # the limit is shown under its own metric, by name, never as "a plan limit"
        assert "per_unit_limit_utilization" not in codes
        if "widget_users__utilization" in codes:
            value = X.loc[idx, "widget_users__utilization"]
            assert f"widget users at {value:.0%} of plan limit" in shown
            hits += 1
    assert hits > 0  # the planted signal shows up as a reason


def test_top_reasons_needs_matching_snapshot_rows(
    trained: TrainedModel, snapshots: pd.DataFrame
) -> None:
    frame, X = _scoring_rows(trained, snapshots, 3)
    with pytest.raises(ValueError, match="not in snapshots"):
        top_reasons(trained, X, frame.iloc[:1])
    empty = top_reasons(trained, X.iloc[:0], frame.iloc[:0])
    assert empty.empty and "reason_codes" in empty.columns
    assert np.isfinite(trained.raw_scores(X, "expansion")).all()


# Hand-set contributions on a few rows: the grouping rules without a trained model.
FEATURES = [
    "widget_users__utilization",
    "widget_users__30d",
    "widget_gb__utilization",
    "days_to_renewal",
    "is_promoter_90d",
    "days_since_nps",
    "tenure_days",
    "industry",
]


def _reasons(params: Params, rows: list[list[float]], n: int = 3, **values: list) -> pd.DataFrame:
    default = {
        "widget_users__utilization": 0.83,
        "widget_users__30d": 12.0,
        "widget_gb__utilization": 0.88,
        "days_to_renewal": 41.0,
        "is_promoter_90d": 1.0,
        "days_since_nps": 481.0,
        "tenure_days": 1994.0,
        "industry": "healthcare",
    }
    X = pd.DataFrame({f: values.get(f, [default[f]] * len(rows)) for f in FEATURES})
    X["industry"] = X["industry"].astype("category")
    snapshots = pd.DataFrame({"nps_latest": [10.0] * len(rows)}, index=X.index)
    contrib = np.array(rows, dtype=float)
    return reasons_from_contributions(contrib, X, snapshots, params.reasons, n=n)


def test_same_concept_is_shown_once(params: Params) -> None:
    #        users_util users_30d gb_util renewal promoter nps_age tenure industry
    rows = [
        [0.30, 0.40, 0.50, 0.10, 0.0, 0.0, 0.0, 0.0],  # users total 0.70 beats storage 0.50
        [0.40, -0.1, 0.20, 0.10, 0.0, 0.0, 0.0, 0.0],  # utilization speaks for the users
    ]
    out = _reasons(params, rows)
    assert out.iloc[0, :3].tolist() == [
        "widget users: 12 users a day (30-day average)",
        "widget storage at 88% of plan limit",
        "renewal in 41 days",
    ]
    assert out.iloc[0]["reason_codes"] == "widget_users__30d,widget_gb__utilization,days_to_renewal"
    assert out.iloc[1]["reason_1"] == "widget users at 83% of plan limit"


def test_non_actionable_is_never_shown_and_nulls_are_not_padded(params: Params) -> None:
    #        users_util users_30d gb_util renewal promoter nps_age tenure industry
    rows = [
        [0.00, 0.00, 0.50, 0.00, 0.0, 0.90, 0.80, 0.70],  # only storage is actionable
        [-0.1, -0.1, -0.1, -0.1, 0.0, 0.90, 0.80, 0.70],  # nothing actionable and positive
        [0.00, 0.00, 0.50, 0.00, 0.1, 0.90, 0.00, 0.00],  # NPS ranks by its total, 1.0
    ]
    out = _reasons(params, rows)
    assert out.iloc[0].tolist() == [
        "widget storage at 88% of plan limit",
        None,
        None,
        "widget_gb__utilization",
    ]
    assert out.iloc[1].isna().all()
    assert out.iloc[2, :2].tolist() == [
        "NPS promoter (10) in the last 90 days",
        "widget storage at 88% of plan limit",
    ]
    shown = " ".join(str(text) for text in out.iloc[:, :3].to_numpy().ravel())
    assert "industry" not in shown and "customer for" not in shown and "answered" not in shown


def test_group_without_a_phrase_is_skipped(params: Params) -> None:
    # Not a promoter (value 0 has no phrase): the NPS group has nothing to say; renewal moves up.
    rows = [[0.0, 0.0, 0.0, 0.1, 0.9, 0.0, 0.0, 0.0]]
    out = _reasons(params, rows, n=2, is_promoter_90d=[0.0])
    assert out.iloc[0].tolist() == ["renewal in 41 days", None, "days_to_renewal"]


def test_contributions_need_a_template_per_feature(params: Params) -> None:
    reasons = {f: t for f, t in params.reasons.items() if f != "widget_gb__utilization"}
    X = pd.DataFrame({"widget_gb__utilization": [0.5], "days_to_renewal": [10.0]})
    with pytest.raises(ValueError, match="widget_gb__utilization"):
        reasons_from_contributions(np.ones((1, 2)), X, X, reasons)
    with pytest.raises(ValueError, match="shape"):
        reasons_from_contributions(np.ones((1, 3)), X, X, params.reasons)


def test_reasons_match_the_sign_and_feature_of_the_contributions(
    trained: TrainedModel, snapshots: pd.DataFrame
) -> None:
    """Every reason names a feature whose contribution pushes this account's score up, is its
    group's strongest such feature, and reads that feature's own value."""
    frame, X = _scoring_rows(trained, snapshots, 30)
    reasons = top_reasons(trained, X, frame, n=3)
    contrib = np.asarray(trained.boosters["expansion"].predict(X, pred_contrib=True))[:, :-1]
    templates = trained.params.reasons
    features = trained.features
    checked = 0
    for i, (idx, row) in enumerate(reasons.iterrows()):
        codes = row["reason_codes"].split(",") if isinstance(row["reason_codes"], str) else []
        for k, code in enumerate(codes):
            j = features.index(code)
            assert contrib[i, j] > 0, (idx, code)
            group = [
                f
                for f in features
                if templates[f].group == templates[code].group
                and shown_as_reason(templates[f], X[f].iloc[[i]])[0]
                and contrib[i, features.index(f)] > 0
            ]
            assert max(group, key=lambda f: contrib[i, features.index(f)]) == code
            expected = phrase(templates[code], X[code].iloc[i], frame.loc[idx].to_dict())
            assert row[f"reason_{k + 1}"] == expected
            checked += 1
    assert checked > 10
    # the same rows with every contribution negated: nothing pushes the score up, no reasons
    negated = reasons_from_contributions(-np.abs(contrib), X, frame, templates, n=3)
    assert negated.isna().all().all()
