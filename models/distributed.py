"""The pure parts of running the model past one machine (`flows/modelling/distributed.py` does the I/O).

* Scoring: accounts go to partitions by a stable hash of account_id (`partition_of`); a
  partition's rows are scored by `predict_rows` / `contribution_rows`, the same computation
  `models.score.score_accounts` makes in-process (prepare_features is row by row, and
  LightGBM's prediction of a row does not depend on the other rows), so the results are equal.
* Training: `classifier_params` turns the booster parameters of `lightgbm.train` into the
  arguments of LightGBM's scikit-learn classifier (what `lightgbm.dask.DaskLGBMClassifier`
  takes), and `training_partitions` deals the training rows to partitions, stratified by
  label, so that every partition (and every Dask worker) sees both classes and every
  snapshot date.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from models.arrays import IntArray
from models.features import prepare_features
from models.train import TrainedModel

# lightgbm.train parameter -> the name LGBMClassifier takes it under (an alias LightGBM knows).
_SKLEARN_NAMES = {
    "min_data_in_leaf": "min_child_samples",
    "feature_fraction": "colsample_bytree",
    "bagging_fraction": "subsample",
    "bagging_freq": "subsample_freq",
    "lambda_l2": "reg_lambda",
    "seed": "random_state",
    "num_threads": "n_jobs",
}


def partition_of(account_id: pd.Series, n: int) -> IntArray:
    """Partition 0..n-1 of each account: a hash of account_id mod n (stable across runs and
    processes; an account's rows always go to the same partition)."""
    if n < 1:
        raise ValueError(f"partitions must be >= 1, got {n}")
    hashed = pd.util.hash_pandas_object(account_id.astype(str), index=False).to_numpy()
    return np.asarray(hashed % np.uint64(n), dtype=np.int64)


def scoring_copy(model: TrainedModel) -> TrainedModel:
    """The model without what scoring does not need (backtest metrics and predictions)."""
    return dataclasses.replace(model, metrics=[], backtest_predictions=None)


def predict_rows(model: TrainedModel, rows: pd.DataFrame) -> pd.DataFrame:
    """p_<target> of rows of the scoring frame, indexed like `rows`."""
    X, _ = prepare_features(rows, model.params, model.categories)
    return model.predict_proba(X)


def contribution_rows(model: TrainedModel, rows: pd.DataFrame) -> pd.DataFrame:
    """The primary target's per-feature contributions (pred_contrib, without the bias column)
    of rows of the scoring frame: columns model.features, indexed like `rows`."""
    X, _ = prepare_features(rows, model.params, model.categories)
    features = X[model.features]
    if features.empty:
        return pd.DataFrame(
            np.zeros((0, len(model.features))), index=X.index, columns=model.features
        )
    booster = model.boosters[model.params.primary_target]
    raw = np.asarray(booster.predict(features, pred_contrib=True), dtype=float)
    return pd.DataFrame(raw[:, : len(model.features)], index=X.index, columns=model.features)


def classifier_params(booster_params: dict[str, Any], rounds: int) -> dict[str, Any]:
    """Arguments of `lightgbm.LGBMClassifier` (and DaskLGBMClassifier) that fit the same
    booster as `lightgbm.train(booster_params, ..., num_boost_round=rounds)`.

    Parameters the classifier has under another name are passed under that name, so no
    default of the classifier competes with them; its remaining defaults (reg_alpha,
    min_child_weight, min_split_gain, subsample_for_bin) equal LightGBM's.
    """
    out: dict[str, Any] = {"n_estimators": int(rounds)}
    for name, value in booster_params.items():
        out[_SKLEARN_NAMES.get(name, name)] = value
    return out


def training_partitions(y: IntArray, n: int) -> IntArray:
    """Partition 0..k-1 of each training row, k = min(n, positives, negatives) (at least 1):
    rows are dealt round-robin by label, then by row order (snapshot date, account), so each
    partition holds both classes and a slice of every date."""
    y = np.asarray(y)
    k = max(1, min(n, int((y == 1).sum()), int((y == 0).sum())))
    order = np.lexsort((np.arange(y.size), y))
    parts = np.empty(y.size, dtype=np.int64)
    parts[order] = np.arange(y.size) % k
    return parts
