"""models/acceptance.py: pooled figures, bootstrap intervals and bars that fail only on evidence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.acceptance import Bar, Estimate, _resample_weights, assess, bootstrap, champion_bar
from models.evaluate import expected_calibration_error
from models.params import Params


def _rows(y: np.ndarray, p: np.ndarray, sizes: list[int], model: str = "lightgbm") -> pd.DataFrame:
    cutoffs = np.repeat([f"2025-0{i + 1}-28" for i in range(len(sizes))], sizes)
    return pd.DataFrame(
        {
            "cutoff": cutoffs,
            "target": "expansion",
            "model": model,
            "account_id": [f"A{i:04d}" for i in range(len(y))],
            "y": y.astype(np.int8),
            "p": p,
        }
    )


def _backtest(y: np.ndarray, p: np.ndarray, base: np.ndarray, sizes: list[int]) -> pd.DataFrame:
    return pd.concat([_rows(y, p, sizes), _rows(y, base, sizes, "logistic")], ignore_index=True)


def _signal(n: int, strength: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels at a ~10% base rate and calibrated probabilities that carry `strength` signal."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    truth = 1 / (1 + np.exp(-(-2.4 + strength * z)))
    y = (rng.random(n) < truth).astype(float)
    return y, truth


def _status(bars: tuple[Bar, ...], name: str) -> str:
    return next(b.status for b in bars if b.name == name)


def test_bar_status_needs_the_whole_interval() -> None:
    def bar(low: float, value: float, high: float, higher: bool = True) -> str:
        return Bar("x", "x", Estimate(value, low, high), 0.6, higher).status

    assert bar(0.62, 0.70, 0.78) == "met"
    assert bar(0.50, 0.58, 0.66) == "not shown"  # point below the bar, interval straddles it
    assert bar(0.55, 0.63, 0.70) == "not shown"
    assert bar(0.40, 0.50, 0.59) == "failed"
    assert bar(0.40, 0.50, 0.59, higher=False) == "met"  # e.g. Brier <= 0.6
    assert bar(0.61, 0.70, 0.78, higher=False) == "failed"
    assert bar(math.nan, math.nan, math.nan) == "failed"  # a figure that cannot be computed
    strict = Bar("baseline", "beats", Estimate(0.0, 0.0, 0.0), 0.0, True, strict=True)
    assert strict.status == "not shown" and strict.passed  # the same model: not shown better
    assert Estimate(0.799, 0.772, 0.824).format() == "0.799 [0.772, 0.824]"
    assert Estimate(0.02, -0.01, 0.05).format(".2f", sign=True) == "+0.02 [-0.01, +0.05]"


def test_point_figures_are_the_pooled_ones() -> None:
    y, p = _signal(600, 1.5, seed=1)
    sizes = [190, 200, 210]
    a = assess(_backtest(y, p, p, sizes), _params_with(resamples=20))
    cut = np.repeat([0, 1, 2], sizes)
    wins = pairs = 0.0
    for c in range(3):
        m = cut == c
        n_pos = y[m].sum()
        pairs_c = n_pos * (m.sum() - n_pos)
        wins += roc_auc_score(y[m], p[m]) * pairs_c
        pairs += pairs_c
    assert a.figures["roc_auc"].value == pytest.approx(wins / pairs)
    assert a.figures["ece"].value == pytest.approx(expected_calibration_error(y, p))
    assert a.figures["brier"].value == pytest.approx(np.mean((p - y) ** 2))
    assert a.n == 600 and a.n_pos == int(y.sum()) and len(a.cutoffs) == 3
    low, high = a.figures["roc_auc"].low, a.figures["roc_auc"].high
    assert low < a.figures["roc_auc"].value < high


def _params_with(**acceptance: object) -> Params:
    from models.params import load_params

    params = load_params()
    return params.model_copy(update={"acceptance": params.acceptance.model_copy(update=acceptance)})


def test_a_clearly_bad_model_fails() -> None:
    y, _ = _signal(900, 1.5, seed=2)
    noise = np.random.default_rng(3).uniform(0.0, 0.2, y.size)  # no signal at all
    a = assess(_backtest(y, noise, noise, [300, 300, 300]), _params_with(resamples=300))
    assert _status(a.bars, "roc_auc") == "failed"  # ROC AUC ~0.5, interval below 0.60
    assert not a.passed and any("ROC AUC >= 0.6" in f for f in a.failures)


def test_a_noisy_borderline_model_passes_as_not_shown() -> None:
    y, p = _signal(90, 0.45, seed=11)  # weak signal on 90 rows
    a = assess(_backtest(y, p, p, [30, 30, 30]), _params_with(resamples=300))
    auc = a.figures["roc_auc"]
    assert auc.value < 0.60 < auc.high  # below the bar, and the rows cannot tell
    assert _status(a.bars, "roc_auc") == "not shown"
    assert a.passed and a.not_shown


def test_a_clearly_good_model_passes() -> None:
    y, p = _signal(3000, 2.0, seed=4)  # ECE's interval needs rows: ~0.01 wide here
    weak = np.clip(p + np.random.default_rng(5).normal(0, 0.2, p.size), 0, 1)
    a = assess(_backtest(y, p, weak, [1000, 1000, 1000]), _params_with(resamples=300))
    assert {b.name: b.status for b in a.bars} == {
        "roc_auc": "met",
        "brier": "met",
        "calibration": "met",
        "baseline": "met",
    }
    assert a.passed and not a.failures and not a.not_shown


def test_miscalibration_and_a_better_baseline_fail() -> None:
    y, p = _signal(1500, 2.0, seed=6)
    off = np.clip(p + 0.15, 0, 1)  # ranks as well, but 15 points too high
    a = assess(_backtest(y, off, p, [500, 500, 500]), _params_with(resamples=300))
    assert _status(a.bars, "calibration") == "failed"
    worse = np.clip(p + np.random.default_rng(7).normal(0, 0.3, p.size), 0, 1)
    a = assess(_backtest(y, worse, p, [500, 500, 500]), _params_with(resamples=300))
    assert _status(a.bars, "baseline") == "failed"  # the logistic is shown better


def test_the_oracle_bar_is_paired_on_the_same_rows() -> None:
    y, p = _signal(900, 1.0, seed=8)
    backtest = _backtest(y, p, p, [300, 300, 300])
    rows = backtest[backtest["model"] == "lightgbm"]
    oracle = pd.DataFrame(
        {
            "account_id": rows["account_id"],
            "snapshot_date": pd.to_datetime(rows["cutoff"]),
            "p_expansion_90d": rows["y"].astype(float),  # ranks perfectly
        }
    )
    a = assess(backtest, _params_with(resamples=200), oracle=oracle)
    assert a.figures["oracle_roc_auc"].value == 1.0
    assert _status(a.bars, "oracle") == "failed"
    oracle["p_expansion_90d"] = rows["p"].to_numpy()  # the model itself: ratio 1
    a = assess(backtest, _params_with(resamples=200), oracle=oracle)
    assert _status(a.bars, "oracle") == "met"
    assert a.figures["oracle_ratio"].value == pytest.approx(1.0)


def test_intervals_are_seeded_and_resample_within_cutoffs() -> None:
    y, p = _signal(300, 1.5, seed=9)
    backtest = _backtest(y, p, p, [100, 120, 80])
    first = assess(backtest, _params_with(resamples=100))
    again = assess(backtest.sample(frac=1.0, random_state=1), _params_with(resamples=100))
    assert first.figures == again.figures  # row order does not matter, the seed fixes draws
    other = assess(backtest, _params_with(resamples=100, seed=1))
    assert other.figures["roc_auc"] != first.figures["roc_auc"]
    weights = np.concatenate(_resample_weights(np.array([3, 5]), 7, 0))
    assert weights.shape == (7, 8)
    assert (weights[:, :3].sum(axis=1) == 3).all() and (weights[:, 3:].sum(axis=1) == 5).all()


def test_bootstrap_of_a_mean() -> None:
    hits = np.array([1.0] * 30 + [0.0] * 70)
    est = bootstrap(
        np.zeros(100),
        lambda W: {"rate": np.asarray(W @ hits) / W.sum(axis=1)},
        500,
        0,
        0.95,
    )["rate"]
    assert est.value == pytest.approx(0.30)
    assert 0.19 < est.low < 0.25 and 0.35 < est.high < 0.41  # about +-1.96 x 0.046
    assert math.isnan(bootstrap(np.zeros(0), lambda W: {"r": W.sum(axis=1)}, 5, 0, 0.9)["r"].low)


def test_the_champion_bar_on_common_rows() -> None:
    y, p = _signal(1500, 2.0, seed=10)
    sizes = [500, 500, 500]
    mine = _rows(y, p, sizes)
    params = _params_with(resamples=200)
    same = champion_bar(mine, mine.copy(), params)
    assert same.figure.value == 0.0 and same.status == "failed"  # short of + margin: kept
    worse = np.clip(p + np.random.default_rng(12).normal(0, 0.3, p.size), 0, 1)
    assert champion_bar(mine, _rows(y, worse, sizes), params).status == "met"
    assert champion_bar(_rows(y, worse, sizes), mine, params).status == "failed"
    # two models as good as each other on 600 rows: the rows cannot tell, promoted
    y6, p6 = _signal(600, 2.0, seed=10)
    a, b = (np.clip(p6 + np.random.default_rng(s).normal(0, 0.1, 600), 0, 1) for s in (13, 14))
    bar = champion_bar(_rows(y6, a, [200] * 3), _rows(y6, b, [200] * 3), params)
    assert bar.status == "not shown" and bar.passed, bar.describe()
    # a near copy of the champion: the paired interval is narrow, short of + margin
    near = np.clip(p + np.random.default_rng(13).normal(0, 0.02, p.size), 0, 1)
    assert champion_bar(_rows(y, near, sizes), mine, params).status == "failed"
    # only the rows both predicted count: the champion lacks the last cut-off
    partial = champion_bar(mine, _rows(y, p, sizes).iloc[:1000], params)
    assert "1,000 common rows of 2 cut-offs" in partial.detail
    none = champion_bar(mine, _rows(y, p, sizes).iloc[:0], params)
    assert none.status == "failed" and math.isnan(none.figure.value)


def test_a_second_assessment_of_the_same_rows_reuses_the_figures(monkeypatch) -> None:
    """Promotion and the model report assess the same model in one run: the bootstrap runs
    once; other rows or other interval settings are assessed afresh."""
    import models.acceptance as acceptance

    y, p = _signal(600, 1.5, seed=4)
    _, base = _signal(600, 0.5, seed=5)
    rows = _backtest(y, p, base, [300, 300])
    params = _params_with(resamples=300)
    calls = []
    real = acceptance.bootstrap
    monkeypatch.setattr(acceptance, "bootstrap", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = assess(rows, params)
    again = assess(rows.sample(frac=1.0, random_state=1), params)  # same rows, another order
    assert len(calls) == 1 and again.figures == first.figures and again.bars == first.bars
    moved = rows.assign(p=np.where(rows["model"] == "lightgbm", rows["p"] * 0.9, rows["p"]))
    assess(moved, params)
    assert assess(rows, _params_with(resamples=200)).resamples == 200
    assert len(calls) == 3
