"""Calibration of the booster that scores: out-of-fold scores of the refit, by account, and a
calibrator that never reverses the ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.booster import OutOfFold, fit_booster
from models.calibration import fit_calibrator
from models.params import Params, load_params


def _data(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, Params]:
    params = load_params()
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({c: rng.normal(size=n) for c in params.features.numeric})
    for c in params.features.categorical:
        X[c] = pd.Categorical(["a"] * n)
    signal = X["per_unit_limit_utilization"].to_numpy()
    y = (signal + rng.normal(scale=0.7, size=n) > 1.2).astype(np.int64)
    accounts = np.repeat(np.arange(n // 6), 6)  # six snapshots per account
    return X, y, accounts, params


def test_a_platt_fit_never_reverses_the_ranking() -> None:
    raw = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    assert fit_calibrator(raw, np.array([1, 1, 0, 1, 0, 0]), "sigmoid").method == "identity"
    assert fit_calibrator(raw, np.array([0, 0, 1, 0, 1, 1]), "sigmoid").a > 0


def test_out_of_fold_scores_hold_each_account_out() -> None:
    X, y, accounts, params = _data()
    booster_params = params.lightgbm.booster_params()
    booster_params["min_data_in_leaf"] = 20
    oof = OutOfFold(5)
    raw = oof(booster_params, X, y, [], 30, accounts)
    fold = oof._fold
    assert set(fold) == set(range(5))
    for account in np.unique(accounts):  # an account's snapshots share one fold
        assert len(set(fold[accounts == account])) == 1
    assert np.corrcoef(raw, X["per_unit_limit_utilization"])[0, 1] > 0.5
    refits = oof._refits
    again = oof(booster_params, X, 1 - y, [], 30, accounts)  # next target: same folds, binning
    assert oof._refits is refits and not np.allclose(again, raw)


def test_the_refit_is_calibrated_on_its_out_of_fold_scores() -> None:
    X, y, accounts, params = _data()
    split = 400
    args = (X[:split], y[:split], X[split:], y[split:])
    _, calibrator = fit_booster(*args, params, refit=(X, y), refit_groups=accounts)
    old = params.model_copy(
        update={"calibration": params.calibration.model_copy(update={"refit_folds": 0})}
    )
    booster, validation = fit_booster(*args, old, refit=(X, y), refit_groups=accounts)
    assert calibrator.method == validation.method == "sigmoid"
    assert (calibrator.a, calibrator.b) != (validation.a, validation.b)
    # the calibrated refit's probabilities average the known rows' rate
    p = calibrator.predict(booster.predict(X, raw_score=True))
    assert abs(p.mean() - y.mean()) < 0.03
