"""One calibrated LightGBM booster per target: early stopping on the validation rows, then (with
`lightgbm.refit`, the default) a refit with the early-stopped number of rounds on every row
whose label is known at the cut-off, so the scores use the freshest labelled months.

The calibrator maps the scores of the booster that scores. Without the refit it is fitted on
the early-stopped booster's validation scores. With it, on out-of-fold scores of the refit
itself (`calibration.refit_folds`): the known rows split into K folds by account, K boosters
with the refit's parameters and rounds each learn from the other folds and score theirs, so
every known row gets a score from a booster like the refit that did not learn it
(`OutOfFold`). (Fitting it on the early-stopped booster's validation scores and applying it to
the refit's, whose scale differs, left the backtest ECE up to twice as high: params.yaml,
`calibration:`.)

Work that does not depend on the label (LightGBM's binning of a split's rows) is done once per
split and shared by the three targets (`FitSets`, `LocalRefit`).

The refit of the final model is the one step that can run elsewhere: `train_model(...,
refit_booster=...)` takes a function with the signature of `refit_local` (the default), e.g.
`flows.modelling.distributed.dask_refit`, which fits the same parameters for the same number of rounds
with `lightgbm.dask` on a Dask cluster. The backtest always refits in this process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.arrays import FloatArray, IntArray
from models.calibration import Calibrator, fit_calibrator
from models.features import InsufficientLabelsError
from models.params import Params


def categorical_columns(X: pd.DataFrame, params: Params) -> list[str]:
    """The categorical features among X's columns, in params order."""
    return [c for c in params.features.categorical if c in X.columns]


# (booster parameters, X, y, categorical feature names, rounds) -> booster fitted on all of X.
RefitBooster = Callable[[dict[str, Any], pd.DataFrame, IntArray, list[str], int], lgb.Booster]


def refit_local(
    booster_params: dict[str, Any],
    X: pd.DataFrame,
    y: IntArray,
    categorical: list[str],
    rounds: int,
) -> lgb.Booster:
    """`rounds` boosting rounds on every row of X in this process (the default refit)."""
    known = lgb.Dataset(X, label=y, categorical_feature=categorical)
    refitted = lgb.train(booster_params, known, num_boost_round=rounds)
    return lgb.Booster(model_str=refitted.model_to_string())


class LocalRefit:
    """`refit_local` that bins the rows once per feature matrix: the three targets of a split
    refit on the same X with their own labels, so the LightGBM Dataset built for the first is
    reused (`set_label`) by the next ones. Binning does not look at the label, so the boosters
    equal `refit_local`'s."""

    def __init__(self) -> None:
        self._X: pd.DataFrame | None = None
        self._categorical: list[str] = []
        self._data: lgb.Dataset | None = None

    def __call__(
        self,
        booster_params: dict[str, Any],
        X: pd.DataFrame,
        y: IntArray,
        categorical: list[str],
        rounds: int,
    ) -> lgb.Booster:
        if self._data is None or self._X is not X or self._categorical != categorical:
            self._X, self._categorical = X, list(categorical)
            self._data = lgb.Dataset(
                X, label=y, categorical_feature=categorical, free_raw_data=False
            )
        else:
            self._data.set_label(y)
        refitted = lgb.train(booster_params, self._data, num_boost_round=rounds)
        return lgb.Booster(model_str=refitted.model_to_string())


class FitSets:
    """The early-stopping fit's LightGBM Datasets of one split, binned once (validation with
    the training rows' bins) and given each target's label in turn."""

    def __init__(self, X_train: pd.DataFrame, X_val: pd.DataFrame, categorical: list[str]):
        self.X_train, self.X_val, self.categorical = X_train, X_val, categorical
        self._train: lgb.Dataset | None = None
        self._val: lgb.Dataset | None = None

    def with_labels(self, y_train: IntArray, y_val: IntArray) -> tuple[lgb.Dataset, lgb.Dataset]:
        if self._train is None or self._val is None:
            self._train = lgb.Dataset(
                self.X_train,
                label=y_train,
                categorical_feature=self.categorical,
                free_raw_data=False,
            )
            self._val = lgb.Dataset(
                self.X_val, label=y_val, reference=self._train, free_raw_data=False
            )
        else:
            self._train.set_label(y_train)
            self._val.set_label(y_val)
        return self._train, self._val


class OutOfFold:
    """Out-of-fold raw scores of the refit rows: K folds by group (account, so an account's
    snapshots are never both learned and scored), each scored by a booster fitted with the
    refit's parameters and rounds on the other folds. The folds' LightGBM Datasets are binned
    once per feature matrix and shared by the targets of a split (`LocalRefit` each)."""

    def __init__(self, folds: int) -> None:
        self.folds = folds
        self._X: pd.DataFrame | None = None
        self._fold: np.ndarray[Any, np.dtype[np.int64]] = np.zeros(0, dtype=np.int64)
        self._refits: list[LocalRefit] = []
        self._rows: list[tuple[pd.DataFrame, pd.DataFrame]] = []

    def _split(self, X: pd.DataFrame, groups: Any) -> None:
        keys = pd.Series(np.asarray(groups).astype(str))
        hashed = pd.util.hash_pandas_object(keys, index=False).to_numpy()
        self._fold = (hashed % np.uint64(self.folds)).astype(np.int64)
        self._X = X
        self._refits = [LocalRefit() for _ in range(self.folds)]
        self._rows = [(X.loc[self._fold != k], X.loc[self._fold == k]) for k in range(self.folds)]

    def __call__(
        self,
        booster_params: dict[str, Any],
        X: pd.DataFrame,
        y: IntArray,
        categorical: list[str],
        rounds: int,
        groups: Any,
    ) -> FloatArray:
        """Raw scores of every row of X from the booster of the fold that did not learn it."""
        if self._X is not X:
            self._split(X, groups)
        raw = np.zeros(len(y), dtype=np.float64)
        for k, ((fit_X, score_X), refit) in enumerate(zip(self._rows, self._refits, strict=True)):
            held = self._fold == k
            if not held.any() or held.all():
                continue
            fit_y = y[~held]
            if fit_y.min() == fit_y.max():
                raw[held] = 0.0
                continue
            booster = refit(booster_params, fit_X, fit_y, categorical, rounds)
            raw[held] = booster.predict(score_X, raw_score=True)
        return raw


def fit_booster(
    X_train: pd.DataFrame,
    y_train: IntArray,
    X_val: pd.DataFrame,
    y_val: IntArray,
    params: Params,
    target: str = "target",
    refit: tuple[pd.DataFrame, IntArray] | None = None,
    refit_booster: RefitBooster = refit_local,
    fit_sets: FitSets | None = None,
    refit_groups: Any = None,
    out_of_fold: OutOfFold | None = None,
) -> tuple[lgb.Booster, Calibrator]:
    """LightGBM with early stopping on the validation rows, and its calibrator.

    With `refit=(X_known, y_known)` and `lightgbm.refit`, the returned booster is refitted on
    those rows with the early-stopped number of rounds by `refit_booster`, and the calibrator
    is fitted on out-of-fold scores of such refits (`calibration.refit_folds` folds of
    `refit_groups`, the account of each known row; `out_of_fold` shares the folds' binning
    between the targets of a split). Otherwise, or with `refit_folds: 0`, the calibrator is
    fitted on the early-stopped booster's validation scores. `fit_sets` (Datasets of these
    X_train and X_val, shared by the targets of a split) saves binning them again.
    """
    if y_train.size == 0 or y_train.min() == y_train.max():
        raise InsufficientLabelsError(
            f"label of target {target!r} has a single class in {y_train.size} training rows"
        )
    booster_params = params.lightgbm.booster_params()
    booster_params["min_data_in_leaf"] = params.lightgbm.leaf_rows(y_train.size)
    booster_params["monotone_constraints"] = params.lightgbm.monotone_vector(list(X_train.columns))
    if y_val.size == 0 or y_val.min() == y_val.max():
        booster_params["metric"] = "binary_logloss"  # AUC is undefined on one class
    categorical = [c for c in params.features.categorical if c in X_train.columns]
    if fit_sets is None:
        fit_sets = FitSets(X_train, X_val, categorical)
    dtrain, dval = fit_sets.with_labels(y_train, y_val)
    booster = lgb.train(
        booster_params,
        dtrain,
        num_boost_round=params.lightgbm.max_rounds,
        valid_sets=[dval],
        valid_names=["validation"],
        callbacks=[
            lgb.early_stopping(
                params.lightgbm.early_stopping_rounds, first_metric_only=True, verbose=False
            )
        ],
    )
    best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
    # Round-trip through the text format: the in-memory model equals the one the registry loads.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    method = params.calibration.method
    folds = params.calibration.refit_folds
    if refit is None or not params.lightgbm.refit or refit[1].min() == refit[1].max():
        calibrator = fit_calibrator(booster.predict(X_val, raw_score=True), y_val, method)
        return booster, calibrator
    X_known, y_known = refit
    if folds < 2:
        calibrator = fit_calibrator(booster.predict(X_val, raw_score=True), y_val, method)
    else:
        out_of_fold = out_of_fold or OutOfFold(folds)
        groups = refit_groups if refit_groups is not None else np.arange(len(y_known))
        raw = out_of_fold(booster_params, X_known, y_known, categorical, best, groups)
        calibrator = fit_calibrator(raw, y_known, method)
    booster = refit_booster(booster_params, X_known, y_known, categorical, best)
    return booster, calibrator
