"""models/ranking.py: the action list's order, its figures on the backtest, the auto weight."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.params import Params, TouchTier, TouchTiers
from models.ranking import (
    FIGURE_KEYS,
    action_ranks,
    backtest_lists,
    choose_value_weight,
    list_figures,
    list_order,
    list_sizes,
    rank_backtest,
    ranking_key,
    ranking_summary,
    ranking_table,
    value_weight,
)
from models.train import TrainedModel


def _with(params: Params, **action_list: object) -> Params:
    return params.model_copy(
        update={"action_list": params.action_list.model_copy(update=action_list)}
    )


def _list(cutoff: str, p: list[float], value: list[float], y: list[int], gain: list[float]):
    n = len(p)
    return pd.DataFrame(
        {
            "cutoff": cutoff,
            "account_id": [f"{cutoff}-{i}" for i in range(n)],
            "p_expansion": p,
            "offer_mrr": value,
            "expected_expansion_mrr": np.asarray(p) * np.nan_to_num(value),
            "y": y,
            "expansion_mrr": gain,
        }
    )


def test_list_figures_by_hand() -> None:
    rows = _list(
        "c",
        p=[0.9, 0.8, 0.5, 0.4, 0.1],
        value=[10.0, 20.0, 30.0, 40.0, 50.0],
        y=[1, 0, 1, 1, 0],
        gain=[15.0, 0.0, 25.0, 5.0, 0.0],
    )
    ordered = list_order(rows, "probability")
    assert ordered["account_id"].tolist() == [f"c-{i}" for i in range(5)]
    top3 = list_figures(ordered, 3)
    assert top3["n_contacted"] == 3 and top3["expanders"] == 2
    assert top3["hit_rate"] == pytest.approx(2 / 3)
    assert top3["expansion_mrr_captured"] == pytest.approx(40.0)
    assert top3["expected_mrr_captured"] == pytest.approx(9.0 + 16.0 + 15.0)
    assert top3["n_rows"] == 5
    whole = list_figures(ordered, 100)  # longer than the list: the whole list
    assert whole["n_contacted"] == 5 and whole["expanders"] == 3
    assert whole["expansion_mrr_captured"] == pytest.approx(45.0)
    assert math.isnan(list_figures(ordered, 0)["hit_rate"])


def test_balanced_order_weighs_value_by_w() -> None:
    p = pd.Series([0.5, 0.4, 0.1])
    value = pd.Series([10.0, 40.0, 1000.0])
    expected = p * value
    ids = pd.Series(["a", "b", "c"])
    none = pd.Series(False, index=p.index)

    def order(rank_by: str, w: float = 0.0) -> list[str]:
        key = ranking_key(p, value, expected, rank_by, w)
        rank = action_ranks(none, key, p, ids)
        return ids.iloc[np.argsort(rank.to_numpy(dtype=int))].tolist()

    assert order("balanced", 0.0) == order("probability") == ["a", "b", "c"]
    # w = 1: p x value = 5, 16, 100
    assert order("balanced", 1.0) == order("expected_mrr") == ["c", "b", "a"]
    # w = 0.5: log p + 0.5 log value -> 0.5*sqrt(10)=1.58, 0.4*sqrt(40)=2.53, 0.1*sqrt(1000)=3.16
    assert order("balanced", 0.5) == ["c", "b", "a"]
    assert order("balanced", 0.25) == ["b", "a", "c"]


def test_an_account_without_an_offer_ranks_by_probability_among_the_cheapest() -> None:
    p = pd.Series([0.30, 0.29, 0.20, 0.10])
    value = pd.Series([np.nan, 100.0, 5.0, 0.0])  # no offer, offer, cheapest offer, no offer
    key = ranking_key(p, value, p * value, "balanced", 1.0)
    # no offer counts as the cheapest offer (5): 0.30 x 5 = 1.5, 29, 1.0, 0.5
    expected = np.log(p.to_numpy()) + np.log([5.0, 100.0, 5.0, 5.0])
    assert np.allclose(key.to_numpy(), expected)
    ids = pd.Series(["none", "big", "cheap", "zero"])
    rank = action_ranks(pd.Series(False, index=p.index), key, p, ids)
    assert ids.iloc[np.argsort(rank.to_numpy(dtype=int))].tolist() == [
        "big",
        "none",  # not last (no value), not first (no made-up value)
        "cheap",
        "zero",
    ]
    # nobody has an offer: the probability order
    nothing = ranking_key(p, pd.Series([np.nan] * 4), p * 0, "balanced", 1.0)
    assert (np.argsort(-nothing.to_numpy()) == np.arange(4)).all()


def test_suppressed_accounts_get_no_rank_and_ties_break_by_p_then_id() -> None:
    key = pd.Series([1.0, 1.0, 1.0, 2.0])
    p = pd.Series([0.2, 0.3, 0.2, 0.1])
    ids = pd.Series(["b", "x", "a", "z"])
    suppressed = pd.Series([False, False, False, True])
    rank = action_ranks(suppressed, key, p, ids)
    assert rank.tolist()[:3] == [3, 1, 2] and pd.isna(rank.iloc[3])


def _two_cutoffs() -> pd.DataFrame:
    """Two cut-offs of 4 rows: by probability the top 2 hold both expanders; the large offers
    (rows 2 and 3) rarely expand, so a large w halves the hit rate at N = 2."""
    rows = []
    for cutoff in ("2025-01-31", "2025-02-28"):
        rows.append(
            _list(
                cutoff,
                p=[0.6, 0.5, 0.2, 0.1],
                value=[10.0, 12.0, 100.0, 60.0],
                y=[1, 1, 0, 1],
                gain=[10.0, 12.0, 0.0, 60.0],
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_auto_weight_is_the_largest_that_keeps_the_hit_rate(params: Params) -> None:
    lists = _two_cutoffs()
    p = _with(params, hit_rate_at=2, min_hit_rate_ratio=0.9)
    # top 2 by p x value ** w: w = 1, 0.75, 0.5 put row 2 (no expansion) first: hit rate 0.5;
    # w = 0.25 (1.07, 0.93, 0.63, 0.28) and w = 0 keep rows 0 and 1: 1.0, the same expected MRR
    w, scan = choose_value_weight(lists, p)
    assert [row["value_weight"] for row in scan] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert [row["passes"] for row in scan] == [False, False, False, True, True]
    assert w == 0.25
    assert scan[-1]["hit_rate"] == 1.0 and scan[0]["hit_rate"] == 0.5
    # a looser bar lets value in, if it also brings at least as much expected MRR
    w_loose, _ = choose_value_weight(lists, _with(p, min_hit_rate_ratio=0.5))
    assert w_loose == 1.0
    assert choose_value_weight(lists.iloc[:0], p) == (None, [])


def test_auto_weight_needs_at_least_the_expected_mrr_of_probability(params: Params) -> None:
    lists = _list("c", p=[0.5, 0.4, 0.3], value=[10.0, 9.0, 12.0], y=[1, 1, 1], gain=[1, 1, 1])
    p = _with(params, hit_rate_at=2, min_hit_rate_ratio=0.0)  # no hit-rate bar
    # w = 1: keys 5, 3.6, 3.6 (tie: p) -> the top 2 of probability, the same expected MRR
    w, scan = choose_value_weight(lists, p)
    assert scan[0]["expected_mrr_captured"] == pytest.approx(5.0 + 3.6)
    assert w == 1.0
    # a large offer whose own probability is small: p_expansion x value puts it first, but
    # its expected MRR (the offer's probability x value) is lower than row 1's
    lists["offer_mrr"] = [10.0, 9.0, 50.0]
    lists["expected_expansion_mrr"] = [5.0, 3.6, 0.5]
    w, scan = choose_value_weight(lists, p)
    assert [row["passes"] for row in scan] == [False, False, False, False, True]
    assert w == 0.0


def test_list_sizes_per_tier(params: Params) -> None:
    tiers = [
        TouchTier(name="high", capacity=5, capacity_scope="owner"),
        TouchTier(name="mid", capacity=30, capacity_scope="overall"),
        TouchTier(name="open"),
    ]
    p = params.model_copy(update={"touch_tiers": TouchTiers(tiers=tiers, default="rest")})
    assert list_sizes(p, n_owners=4) == {"top_100": 100, "high": 20, "mid": 30}
    assert list_sizes(p) == {"top_100": 100, "high": 5, "mid": 30}


def test_value_weight_setting(params: Params) -> None:
    assert value_weight(_with(params, value_weight="auto"), 0.5) == 0.5
    assert value_weight(_with(params, value_weight="auto"), None) == 0.0  # older model
    assert value_weight(_with(params, value_weight=0.75), 0.25) == 0.75
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Params.model_validate(
            {**params.model_dump(mode="json"), "action_list": {"value_weight": 1.5}}
        )


def _predictions(frame: pd.DataFrame, cutoff: str, targets: tuple[str, ...]) -> pd.DataFrame:
    rows = frame.loc[frame["snapshot_date"] == pd.Timestamp(cutoff)]
    rng = np.random.default_rng(1)
    return pd.concat(
        pd.DataFrame(
            {
                "cutoff": cutoff,
                "target": target,
                "model": model,
                "account_id": rows["account_id"].to_numpy(),
                "y": rows["label_expansion"].astype(int).to_numpy(),
                "p": rng.uniform(0.01, 0.9, len(rows)),
            }
        )
        for target in targets
        for model in ("lightgbm", "logistic")
    )


def test_backtest_lists_join_the_test_rows_and_leave_out_the_suppressed(
    snapshots: pd.DataFrame, params: Params
) -> None:
    from models.features import training_frame

    frame = training_frame(snapshots, params)
    full = ("expansion", "upsell", "cross_sell")
    predictions = pd.concat(
        [
            _predictions(frame, "2025-10-31", full),
            _predictions(frame, "2025-09-30", ("expansion", "upsell")),  # a target failed
        ]
    )
    lists = backtest_lists(frame, predictions, params)
    assert set(lists["cutoff"]) == {"2025-10-31"}
    test = frame.loc[frame["snapshot_date"] == pd.Timestamp("2025-10-31")]
    from models.ranking import suppression_reasons

    listed = test.loc[suppression_reasons(test, params).isna()]
    assert sorted(lists["account_id"]) == sorted(listed["account_id"])
    mine = lists.set_index("account_id")
    truth = listed.set_index("account_id")
    assert (mine["y"] == truth.loc[mine.index, "label_expansion"].astype(int)).all()
    gain = truth.loc[mine.index, "expansion_mrr_next"].fillna(0.0)
    assert np.allclose(mine["expansion_mrr"], gain)
    lgbm = predictions[
        (predictions["model"] == "lightgbm") & (predictions["target"] == "expansion")
    ]
    p = lgbm[lgbm["cutoff"] == "2025-10-31"].set_index("account_id")["p"]
    assert np.allclose(mine["p_expansion"], p.loc[mine.index])


def test_the_model_keeps_its_ranking_figures(trained: TrainedModel, params: Params) -> None:
    assert trained.action_value_weight in params.action_list.auto_weights
    assert trained.value_weight_scan
    metrics = pd.DataFrame(trained.ranking_metrics)
    assert list(metrics.columns) == list(FIGURE_KEYS)
    cutoffs = sorted({r["cutoff"] for r in trained.metrics})
    assert sorted(metrics["cutoff"].unique()) == cutoffs
    assert set(metrics["ranking"]) == {"default", "probability"}
    assert set(metrics["cut"]) == {"top_100", "high_touch", "low_touch"}
    assert (metrics["n_contacted"] <= metrics["n_rows"]).all()
    hits = metrics["expanders"] / metrics["n_contacted"]
    assert np.allclose(hits, metrics["hit_rate"])
    curve = pd.DataFrame(trained.ranking_curve)
    assert (
        curve.groupby(["cutoff", "ranking"])["expanders"]
        .apply(lambda s: s.is_monotonic_increasing)
        .all()
    )
    summary = ranking_summary(trained.ranking_metrics, params, trained.action_value_weight)
    assert summary["cutoffs"] == len(cutoffs) and summary["hit_rate_ratio_met"]
    table = ranking_table(trained.ranking_metrics, "top_100", mean="mean")
    assert table["cutoff"].tolist() == [*cutoffs, "mean"]


def test_rank_backtest_counts_owners_of_per_owner_tiers(
    snapshots: pd.DataFrame, params: Params, trained: TrainedModel, owners: pd.Series
) -> None:
    from models.features import training_frame

    frame = training_frame(snapshots, params)
    tiers = [
        TouchTier(name="mine", capacity=2, capacity_scope="owner"),
        TouchTier(name="team", capacity=3, capacity_scope="overall"),
    ]
    p = params.model_copy(update={"touch_tiers": TouchTiers(tiers=tiers, default="rest")})

    def sizes(by: pd.Series | None) -> set[tuple[str, int]]:
        result = rank_backtest(frame, trained.backtest_predictions, p, owners=by)
        return {(r["cut"], r["n_contacted"]) for r in result.metrics if r["cut"] != "top_100"}

    # 3 owners and the unowned account as one more: 2 x 4
    assert sizes(owners) == {("mine", 8), ("team", 3)}
    assert sizes(None) == {("mine", 2), ("team", 3)}
    assert rank_backtest(frame, None, p).metrics == []
    # params phrased in another language (a ja run's usage features) measure the same
    ja = rank_backtest(frame, trained.backtest_predictions, p.localized("ja"), owners=owners)
    assert (
        ja.metrics == rank_backtest(frame, trained.backtest_predictions, p, owners=owners).metrics
    )


def test_old_models_without_ranking_figures_still_load(
    trained: TrainedModel, tmp_path: Path
) -> None:
    from flows.registry import load_model, model_dir, save_model

    root = tmp_path
    copy = dataclasses.replace(trained)  # save_model sets the version: not on the fixture
    version = save_model(copy, root, "abc", "fp", datetime(2026, 1, 1, tzinfo=UTC))
    again = load_model(root, version)
    assert again.action_value_weight == trained.action_value_weight
    assert again.ranking_metrics == trained.ranking_metrics
    assert len(again.ranking_curve) == len(trained.ranking_curve)
    meta_path = model_dir(root, version) / "metadata.json"
    meta = json.loads(meta_path.read_text())
    for key in ("action_value_weight", "ranking_metrics", "ranking_curve", "value_weight_scan"):
        meta.pop(key)
    meta_path.write_text(json.dumps(meta))
    old = load_model(root, version)
    assert old.action_value_weight is None and old.ranking_metrics == []
    assert old.ranking_curve == [] and old.value_weight_scan == []
