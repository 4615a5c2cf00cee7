"""The baselines the booster is compared with: a logistic regression and the best single
rule (one numeric feature as a ranking).

They need no held-out rows: with `lightgbm.refit` they learn from the same rows known at the
cut-off as the refitted boosters, so the comparison is fair. Their label-free work (imputing,
scaling and one-hot encoding, the single rules' ranks) is done once per split and shared by
the three targets (`Baselines`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models.arrays import FloatArray, IntArray
from models.features import InsufficientLabelsError
from models.params import Params


def _logistic_input(X: pd.DataFrame, params: Params) -> pd.DataFrame:
    out = X.copy()
    for col in params.features.categorical:
        out[col] = X[col].astype(object).where(X[col].notna(), np.nan)
    return out


def logistic_features(params: Params) -> ColumnTransformer:
    """The logistic baseline's inputs: impute + scale numerics, one-hot categoricals."""
    numeric = Pipeline(
        [
            (
                "impute",
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            ),
            ("scale", StandardScaler()),
        ]
    )
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    return ColumnTransformer(
        [
            ("numeric", numeric, params.features.numeric_all),
            ("categorical", categorical, params.features.categorical),
        ]
    )


def _logistic_model(params: Params) -> LogisticRegression:
    return LogisticRegression(
        C=params.baseline.logistic_c, max_iter=params.baseline.logistic_max_iter
    )


def fit_logistic_baseline(X_train: pd.DataFrame, y_train: IntArray, params: Params) -> Pipeline:
    """Baseline: impute + scale numerics, one-hot categoricals, logistic regression."""
    pipeline = Pipeline(
        [("features", logistic_features(params)), ("model", _logistic_model(params))]
    )
    pipeline.fit(_logistic_input(X_train, params), y_train)
    return pipeline


@dataclass(frozen=True)
class SingleRule:
    """Heuristic baseline: rank accounts by one numeric feature (sign = direction)."""

    feature: str
    sign: float
    fill_value: float

    def score(self, X: pd.DataFrame) -> FloatArray:
        values = X[self.feature].astype("float64").fillna(self.fill_value).to_numpy()
        return np.asarray(self.sign * values, dtype=np.float64)


def _auc_from_ranks(y: IntArray, ranks: np.ndarray[Any, Any]) -> float:
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class _RuleCandidates:
    """Every numeric feature of X as a single rule (median-filled), with its rows' ranks: the
    label-free part of `best_single_rule`, computed once for the targets of a split."""

    def __init__(self, X: pd.DataFrame, params: Params) -> None:
        self.candidates: list[tuple[str, float, np.ndarray[Any, Any]]] = []
        for col in params.features.numeric_all:
            values = X[col].astype("float64")
            if values.notna().sum() == 0:
                continue
            fill = float(values.median())
            filled = values.fillna(fill).to_numpy()
            if np.unique(filled).size < 2:
                continue
            ranks = pd.Series(filled).rank(method="average").to_numpy(np.float64)
            self.candidates.append((col, fill, ranks))

    def best(self, y: IntArray) -> SingleRule:
        best: tuple[float, SingleRule] | None = None
        for col, fill, ranks in self.candidates:
            auc = _auc_from_ranks(y, ranks)
            strength = max(auc, 1.0 - auc)
            if best is None or strength > best[0]:
                best = (strength, SingleRule(col, 1.0 if auc >= 0.5 else -1.0, fill))
        if best is None:
            raise InsufficientLabelsError("no numeric feature varies in the training rows")
        return best[1]


def best_single_rule(X_train: pd.DataFrame, y_train: IntArray, params: Params) -> SingleRule:
    """The numeric feature (and direction) with the best training ROC AUC on its own."""
    return _RuleCandidates(X_train, params).best(y_train)


class Baselines:
    """The baselines of one split, fitted per target on the same rows: the logistic
    regression's inputs (imputed, scaled, one-hot) and the single rules' ranks do not depend
    on the label, so they are computed once. Same fits as `fit_logistic_baseline` and
    `best_single_rule` on these rows."""

    def __init__(self, X_fit: pd.DataFrame, X_test: pd.DataFrame, params: Params) -> None:
        self.params = params
        self.n_rows = len(X_fit)
        features = logistic_features(params)
        self._Z_fit = features.fit_transform(_logistic_input(X_fit, params))
        self._Z_test = features.transform(_logistic_input(X_test, params))
        self._rules = _RuleCandidates(X_fit, params)

    def logistic(self, y: IntArray) -> FloatArray:
        """The logistic baseline's test-row probabilities for label y of the fitting rows."""
        model = _logistic_model(self.params).fit(self._Z_fit, y)
        return np.asarray(model.predict_proba(self._Z_test)[:, 1], dtype=np.float64)

    def single_rule(self, y: IntArray) -> SingleRule:
        return self._rules.best(y)
