"""score_accounts: schema, ranges, deciles, offers, touch tiers, suppression."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.features import scoring_frame
from models.params import Condition, Params, SuppressionRule, TouchTier, TouchTiers
from models.score import (
    HEALTH_COLUMNS,
    SCORE_COLUMNS,
    deciles,
    explain_account,
    reasons_for_accounts,
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
    assert (scores["reporting_currency"] == "USD").all()  # the default
    # expected expansion MRR = the offer's own probability x the MRR the offer adds
    cross = scores["offer_type"] == "cross_sell"
    p_offer = scores["p_cross_sell"].where(cross, scores["p_upsell"])
    # (0 without an offer)
    assert np.allclose(
        scores["expected_expansion_mrr"], (p_offer * scores["offer_mrr"]).fillna(0.0)
    )
    offered = scores["offer_type"].notna()
    assert (scores.loc[offered, "offer_mrr"] > 0).all()
    assert scores.loc[~offered, "offer_mrr"].isna().all()
    assert set(scores["offer_type"].dropna()) <= {"cross_sell", "upsell_tier", "upsell_units"}
    assert scores["touch_tier"].isin(["high_touch", "low_touch", "tech_touch"]).all()
    assert scores.loc[offered, "next_best_offer"].str.match(r"^(cross-sell|upsell): ").all()
    assert scores.loc[offered & ~cross, "next_best_offer"].str.startswith("upsell: ").all()
    assert (scores["is_suppressed"] == scores["suppression_reason"].notna()).all()
    assert scores.loc[~scores["is_suppressed"], "reason_1"].notna().all()
    listed = scores[~scores["is_suppressed"]].sort_values("action_rank")
    assert listed["action_rank"].tolist() == list(range(1, len(listed) + 1))
    # balanced (the default): p_expansion x offer MRR ** w, w the model's auto weight
    w = trained.action_value_weight
    assert w is not None
    key = np.log(listed["p_expansion"]) + w * np.log(listed["offer_mrr"].where(lambda v: v > 0))
    assert key.dropna().is_monotonic_decreasing


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


def test_reasons_only_for_the_top_n_of_the_action_list(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params, as_of: date
) -> None:
    out = score_accounts(trained, snapshots, as_of, params, reasons_for_top_n=4)
    with_reasons = out[out["reason_codes"].notna()]
    assert len(with_reasons) <= 4
    expected = out.loc[out["action_rank"] <= 4, "account_id"].tolist()
    assert len(expected) == 4
    assert set(with_reasons["account_id"]) <= set(expected)
    assert not with_reasons["is_suppressed"].any()
    assert out.loc[out["action_rank"].isna(), "reason_1"].isna().all()
    assert out.loc[out["is_suppressed"], "reason_1"].isna().all()


def test_reasons_for_every_account_of_a_capped_tier_and_the_first_of_the_default(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params, as_of: date, owners: pd.Series
) -> None:
    p = _tiered(_suppress_half(params, days=30), "owner", high=1, low=2)
    p = p.model_copy(
        update={"action_list": p.action_list.model_copy(update={"default_tier_reasons": 3})}
    )
    out = score_accounts(trained, snapshots, as_of, p, owners=owners)
    has = out["reason_codes"].notna()
    listed = out["action_rank"].notna()
    capped = out["touch_tier"].isin(["high_touch", "low_touch"])
    assert (capped & listed).sum() > 3
    # every listed account a capped tier holds gets reasons (an account whose score nothing
    # pushes up could have none; the synthetic accounts all have some)
    assert has[capped & listed].all()
    default = out[listed & out["touch_tier"].eq("tech_touch")].sort_values("action_rank")
    assert len(default) > 3
    assert has[default.index[:3]].all() and not has[default.index[3:]].any()
    assert not has[~listed].any()  # suppressed: none
    assert has.sum() == (capped & listed).sum() + 3
    # the override: the first N of the action list instead
    top = score_accounts(trained, snapshots, as_of, p, reasons_for_top_n=2, owners=owners)
    assert set(top.loc[top["reason_codes"].notna(), "action_rank"]) == {1, 2}


def test_reasons_for_accounts_rule(params: Params) -> None:
    rank = pd.Series([1, 2, 3, 4, 5, pd.NA, 6], dtype="Int64")
    tiers = pd.Series(["high", "low", "open", "open", "open", "high", "open"])
    p = _tiered(params, "owner", high=1, low=1)
    tiered = [
        TouchTier(name="high", capacity=1),
        TouchTier(name="low", capacity=1),
        TouchTier(name="open"),  # no capacity: like the default tier
    ]
    p = p.model_copy(
        update={
            "touch_tiers": TouchTiers(tiers=tiered, default="rest"),
            "action_list": p.action_list.model_copy(update={"default_tier_reasons": 2}),
        }
    )
    assert reasons_for_accounts(rank, tiers, p).tolist() == [0, 1, 2, 3]
    assert reasons_for_accounts(rank, tiers, p, top_n=3).tolist() == [0, 1, 2]
    assert reasons_for_accounts(rank, tiers, p, top_n=0).tolist() == []


def test_explain_account_gives_reasons_to_any_active_account(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params, as_of: date
) -> None:
    strict = _suppress_half(params)
    scores = score_accounts(trained, snapshots, as_of, strict, reasons_for_top_n=0)
    suppressed = scores.loc[scores["is_suppressed"], "account_id"].iloc[0]
    out = explain_account(trained, snapshots, as_of, suppressed, strict)
    row = scores.set_index("account_id").loc[suppressed]
    assert out["p_expansion"] == pytest.approx(row["p_expansion"])
    assert out["next_best_offer"] == row["next_best_offer"]
    assert out["suppression_reason"] == row["suppression_reason"]
    assert out["reason_1"] and out["reason_codes"]
    frame = snapshots.copy()
    at = pd.to_datetime(frame["snapshot_date"]) == pd.Timestamp(as_of)
    frame.loc[at & frame["account_id"].eq("A0001"), "is_active"] = False
    with pytest.raises(ValueError, match=f"'A0001' is not active at {as_of}"):
        explain_account(trained, frame, as_of, "A0001", params)
    with pytest.raises(ValueError, match="'nobody': no snapshot"):
        explain_account(trained, frame, as_of, "nobody", params)
    with pytest.raises(ValueError, match="'A0002' has no snapshot at 2030-01-01"):
        explain_account(trained, frame, "2030-01-01", "A0002", params)


def _suppress_half(params: Params, days: float = 60) -> Params:
    """Params whose contact cool-down suppresses about half of the synthetic accounts."""
    rules = [r for r in params.suppression if not r.reason.startswith("contacted")]
    cooldown = SuppressionRule(
        reason=f"contacted in the last {days:.0f} days",
        when=[Condition(column="days_since_last_activity", op="lt", value=days)],
    )
    return params.model_copy(update={"suppression": [*rules, cooldown]})


def test_suppressed_accounts_never_appear_in_action_lists(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params, as_of: date, owners: pd.Series
) -> None:
    strict = _suppress_half(params)
    out = score_accounts(trained, snapshots, as_of, strict, owners=owners)
    suppressed = out["is_suppressed"]
    assert 5 < suppressed.sum() < 25
    assert out["suppression_reason"].str.contains("contacted in the last 60 days").sum() > 0
    assert out.loc[suppressed, "action_rank"].isna().all()
    assert (
        out.loc[suppressed, ["reason_1", "reason_2", "reason_3", "reason_codes"]].isna().all().all()
    )
    listed = out.loc[~suppressed].sort_values("action_rank")
    assert listed["action_rank"].tolist() == list(range(1, len(listed) + 1))
    # the cool-down is configurable: no cool-down, nobody suppressed by it
    loose = _suppress_half(params, days=0)
    again = score_accounts(trained, snapshots, as_of, loose, owners=owners)
    assert not again["suppression_reason"].fillna("").str.contains("contacted").any()
    assert again["action_rank"].notna().sum() > listed["action_rank"].size


def test_action_rank_by_probability(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params, as_of: date
) -> None:
    by_p = params.model_copy(
        update={"action_list": params.action_list.model_copy(update={"rank_by": "probability"})}
    )
    out = score_accounts(trained, snapshots, as_of, by_p)
    listed = out[out["action_rank"].notna()].sort_values("action_rank")
    assert listed["p_expansion"].is_monotonic_decreasing


def _tiered(params: Params, scope: str, high: int, low: int) -> Params:
    tiers = [
        TouchTier(name="high_touch", min_mrr=1000, capacity=high, capacity_scope=scope),
        TouchTier(name="low_touch", min_mrr=0, capacity=low, capacity_scope=scope),
    ]
    return params.model_copy(update={"touch_tiers": TouchTiers(tiers=tiers, default="tech_touch")})


def test_touch_tier_capacity_per_owner_is_respected(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params, as_of: date, owners: pd.Series
) -> None:
    p = _tiered(_suppress_half(params), "owner", high=2, low=3)
    out = score_accounts(trained, snapshots, as_of, p, owners=owners)
    out["owner"] = out["account_id"].map(owners).fillna("(none)")
    counts = out.groupby(["owner", "touch_tier"]).size().unstack(fill_value=0)
    assert (counts.get("high_touch", 0) <= 2).all() and (counts.get("low_touch", 0) <= 3).all()
    assert counts["high_touch"].max() == 2  # the capacity is used
    mrr = scoring_frame(snapshots, as_of).set_index("account_id")["mrr"]
    out["mrr"] = out["account_id"].map(mrr)
    for _, group in out.groupby("owner"):
        listed = group[group["action_rank"].notna()].sort_values("action_rank")
        high = listed[listed["mrr"] >= 1000]
        # qualifying accounts claim high_touch in action order; the rest overflow to low_touch
        assert high["touch_tier"].head(2).eq("high_touch").all()
        assert not high["touch_tier"].iloc[2:].eq("high_touch").any()
        # suppressed accounts only take capacity the action list left over
        if (listed["touch_tier"] == "high_touch").sum() == 2:
            assert not group.loc[group["is_suppressed"], "touch_tier"].eq("high_touch").any()
    assert out["touch_tier"].eq("tech_touch").any()  # overflow beyond low_touch


def test_touch_tier_capacity_overall_and_without_owners(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params, as_of: date
) -> None:
    p = _tiered(params, "overall", high=4, low=5)
    out = score_accounts(trained, snapshots, as_of, p)
    assert (out["touch_tier"] == "high_touch").sum() == 4
    assert (out["touch_tier"] == "low_touch").sum() == 5
    per_owner = _tiered(params, "owner", high=4, low=5)
    with pytest.warns(UserWarning, match="no owners given"):
        again = score_accounts(trained, snapshots, as_of, per_owner)
    pd.testing.assert_series_equal(again["touch_tier"], out["touch_tier"])  # never more


def _greedy_tiers(frame: pd.DataFrame, p: Params, owners: pd.Series, order: np.ndarray) -> list:
    """The definition: accounts in priority order each take the first tier that they qualify
    for and that still has room (per owner or overall)."""
    used: dict[tuple[int, str], int] = {}
    out = [p.touch_tiers.default] * len(frame)
    for i in order:
        for k, tier in enumerate(p.touch_tiers.tiers):
            if not (frame["mrr"].iat[i] >= (tier.min_mrr or 0)):
                continue
            key = (k, owners.iat[i] if tier.capacity_scope == "owner" else "")
            if tier.capacity is not None and used.get(key, 0) >= tier.capacity:
                continue
            used[key] = used.get(key, 0) + 1
            out[i] = tier.name
            break
    return out


def test_touch_tiers_match_the_one_account_at_a_time_definition(params: Params) -> None:
    rng = np.random.default_rng(7)
    n = 400
    frame = pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(n)],
            "mrr": rng.choice([50.0, 600.0, 2000.0, 9000.0], n),
            "segment": "smb",
        }
    )
    owners = pd.Series(rng.choice(["ann", "bob", "cy"], n), index=frame["account_id"])
    priority = pd.Series(rng.permutation(n).astype(float))
    tiers = [
        TouchTier(name="top", min_mrr=5000, capacity=7, capacity_scope="owner"),
        TouchTier(name="high", min_mrr=1000, capacity=20, capacity_scope="overall"),
        TouchTier(name="low", min_mrr=500, capacity=30, capacity_scope="owner"),
        TouchTier(name="any", min_mrr=0),
    ]
    p = params.model_copy(update={"touch_tiers": TouchTiers(tiers=tiers, default="none")})
    got = touch_tiers(frame, p, owners=owners, priority=priority).tolist()
    order = np.argsort(priority.to_numpy(), kind="mergesort")
    assert got == _greedy_tiers(frame, p, owners.reset_index(drop=True), order)
    assert {"top", "high", "low", "any"} <= set(got)


def test_touch_tier_needs_expected_mrr_when_configured(params: Params) -> None:
    tiers = [TouchTier(name="high_touch", min_mrr=1000, min_expected_mrr=50.0)]
    p = params.model_copy(update={"touch_tiers": TouchTiers(tiers=tiers, default="tech_touch")})
    frame = pd.DataFrame({"mrr": [2000.0, 2000.0, 10.0], "segment": ["smb"] * 3})
    expected = pd.Series([80.0, 20.0, 500.0])
    assert touch_tiers(frame, p, expected).tolist() == ["high_touch", "tech_touch", "tech_touch"]


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
            "mrr": [100.0, 9000.0, 1500.0, 100.0, None],
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


def test_deciles() -> None:
    assert deciles(3).tolist() == [1, 4, 7]
    assert deciles(20).tolist() == [d for d in range(1, 11) for _ in range(2)]
    assert deciles(0).tolist() == []


def test_health_and_loyalty_are_carried_beside_the_score(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params, as_of: date
) -> None:
    """The customer-success context of each account's snapshot row is published as is; a
    frame without it (a warehouse built before it existed) gives nulls, not an error."""
    without = score_accounts(trained, snapshots, as_of, params)
    assert without[list(HEALTH_COLUMNS)].isna().all().all()
    frame = snapshots.copy()
    codes = pd.factorize(frame["account_id"])[0]
    frame["health_score"] = codes % 101
    for component in ("adoption", "engagement", "support", "sentiment"):
        frame[f"health_{component}"] = (codes * 7) % 101
    frame["loyalty_stage"] = np.array(["new", "repeater", "promoter", "fan"])[codes % 4]
    out = score_accounts(trained, frame, as_of, params).set_index("account_id")
    at = frame[pd.to_datetime(frame["snapshot_date"]) == pd.Timestamp(as_of)]
    expected = at.set_index("account_id").loc[out.index]
    for column in HEALTH_COLUMNS:
        assert out[column].tolist() == expected[column].tolist(), column


def test_reasons_in_chunks_give_the_same_scores_and_report_progress(
    trained: TrainedModel,
    snapshots: pd.DataFrame,
    params: Params,
    as_of: date,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import models.score as score

    whole = score_accounts(trained, snapshots, as_of, params, reasons_for_top_n=50)
    monkeypatch.setattr(score, "REASON_CHUNK", 7)  # 50 accounts: 8 chunks
    steps: list[tuple[int, int]] = []
    chunked = score_accounts(
        trained,
        snapshots,
        as_of,
        params,
        reasons_for_top_n=50,
        progress=lambda done, total: steps.append((done, total)),
    )
    pd.testing.assert_frame_equal(chunked, whole)
    given = int(whole["reason_1"].notna().sum())
    total = 1 + -(-given // 7)  # the predictions, then the accounts given reasons, 7 at a time
    assert given > 7 and steps == [(k, total) for k in range(1, total + 1)]
