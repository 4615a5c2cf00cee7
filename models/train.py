"""Train the expansion model: time-ordered backtest, one calibrated LightGBM per target.

Split scheme (H = label_horizon_days; a snapshot's label covers (snapshot_date, +H]):

* test       = the rows of one cut-off snapshot date c (each of the last `n_cutoffs`
               snapshot dates with complete labels);
* validation = the last `validation_dates` snapshot dates v with v + H <= c: their labels
               are known at c. Used for early stopping and calibration;
* train      = every snapshot date s with s + H <= min(validation dates): train labels are
               known before the validation window begins.

So train precedes validation precedes test, and no label window reaches past the next
window's first snapshot date. The final model uses the same rule with the last complete
snapshot date(s) as validation and no test. Never a random split.

With `lightgbm.refit` (default), once early stopping has picked the number of rounds and the
calibrator has been fitted on the validation rows' out-of-sample scores, each booster is
refitted with that number of rounds on every row whose label is known at the cut-off (train,
the dates between train and validation, and validation: snapshot_date + H <= c), so the
scores use the freshest labelled months. The calibrator stays the one fitted out of sample.
The baselines (logistic regression, single rule) need no held-out rows and learn from the same
known rows, so the comparison is fair. Test rows are never seen by any of them.

Past `lightgbm.max_fit_rows` known rows (large data), the boosters and the baselines learn from
a hash sample of (account_id, snapshot_date) of about that many known rows (`fit_sample`: the
same rows in every split and run, whatever their labels); validation and test rows are never
sampled. Work that does not depend on the label (LightGBM's binning of a split's rows, the
logistic baseline's imputing, scaling and one-hot encoding, the single rules' ranks) is done once
per split and shared by the three targets.

The refit of the final model is the one step that can run elsewhere: `train_model(...,
refit_booster=...)` takes a function with the signature of `refit_local` (the default), e.g.
`flows.modelling.distributed.dask_refit`, which fits the same parameters for the same number of rounds
with `lightgbm.dask` on a Dask cluster. The backtest always refits in this process.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models.evaluate import binary_metrics
from models.features import (
    Categories,
    DateLike,
    as_float,
    fit_categories,
    label_array,
    prepare_features,
    to_timestamp,
    training_frame,
)
from models.offers import OfferValues, fit_offer_values
from models.params import Params

IntArray = np.ndarray[Any, np.dtype[np.int64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class InsufficientLabelsError(ValueError):
    """A training set has only one class for a target."""


# --- calibration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibrator:
    """Maps a booster's raw score (log-odds) to a calibrated probability.

    `sigmoid`: 1 / (1 + exp(-(a * raw + b))) (Platt); `isotonic`: piecewise-linear through
    (x, y) with clipping at the ends; `identity`: the booster's own sigmoid (fallback when the
    validation window has a single class).
    """

    method: str
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def predict(self, raw_score: Any) -> FloatArray:
        """Calibrated probabilities for raw scores."""
        raw = np.asarray(raw_score, dtype=np.float64)
        if self.method == "isotonic":
            return np.clip(np.interp(raw, self.x, self.y), 0.0, 1.0)
        z = np.clip(self.a * raw + self.b, -500.0, 500.0)
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "a": self.a,
            "b": self.b,
            "x": list(self.x),
            "y": list(self.y),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Calibrator:
        return cls(
            method=str(raw["method"]),
            a=float(raw["a"]),
            b=float(raw["b"]),
            x=tuple(float(v) for v in raw["x"]),
            y=tuple(float(v) for v in raw["y"]),
        )


def fit_calibrator(raw_score: Any, y: Any, method: str) -> Calibrator:
    """Fit a Platt (`sigmoid`) or `isotonic` calibrator on held-out raw scores."""
    raw = np.asarray(raw_score, dtype=np.float64)
    y_arr = np.asarray(y, dtype=np.int64)
    if y_arr.size == 0 or y_arr.min() == y_arr.max():
        return Calibrator(method="identity")
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y_arr)
        return Calibrator(
            method="isotonic",
            x=tuple(float(v) for v in iso.X_thresholds_),
            y=tuple(float(v) for v in iso.y_thresholds_),
        )
    if method == "sigmoid":
        lr = LogisticRegression(C=np.inf).fit(raw.reshape(-1, 1), y_arr)
        return Calibrator(method="sigmoid", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
    raise ValueError(f"calibration.method must be sigmoid or isotonic, got {method!r}")


# --- splits -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Snapshot dates of one time-ordered split (test_date is None for the final model)."""

    train_dates: tuple[pd.Timestamp, ...]
    validation_dates: tuple[pd.Timestamp, ...]
    test_date: pd.Timestamp | None = None


def _split_before(
    dates: list[pd.Timestamp], end: pd.Timestamp | None, params: Params
) -> Split | None:
    horizon = pd.Timedelta(days=params.label_horizon_days)
    known = [d for d in dates if end is None or d + horizon <= end]
    validation = known[-params.backtest.validation_dates :]
    if len(validation) < params.backtest.validation_dates:
        return None
    train = [d for d in dates if d + horizon <= validation[0]]
    if len(train) < params.backtest.min_train_dates:
        return None
    return Split(tuple(train), tuple(validation), end)


def backtest_splits(dates: Any, params: Params) -> list[Split]:
    """Rolling-origin splits for the last `n_cutoffs` complete snapshot dates, oldest first.

    Cut-offs without enough history for a validation window and `min_train_dates` training
    dates are left out.
    """
    ordered = sorted({to_timestamp(d) for d in dates})
    splits = []
    for cutoff in ordered[-params.backtest.n_cutoffs :]:
        split = _split_before(ordered, cutoff, params)
        if split is not None:
            splits.append(split)
    return splits


def final_split(dates: Any, params: Params) -> Split:
    """Split of the final model: the last complete date(s) validate, earlier ones train."""
    ordered = sorted({to_timestamp(d) for d in dates})
    split = _split_before(ordered, None, params)
    if split is None:
        raise ValueError(
            f"not enough snapshot dates with complete labels to train: got {len(ordered)}, need "
            f"{params.backtest.validation_dates} validation date(s) plus "
            f"{params.backtest.min_train_dates} training date(s) whose "
            f"{params.label_horizon_days}-day label windows end before validation begins"
        )
    return split


def _rows(frame: pd.DataFrame, dates: tuple[pd.Timestamp, ...]) -> pd.DataFrame:
    return frame.loc[frame["snapshot_date"].isin(list(dates))]


# --- fitting ----------------------------------------------------------------------------------

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


class _LocalRefit:
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


class _FitSets:
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


def fit_booster(
    X_train: pd.DataFrame,
    y_train: IntArray,
    X_val: pd.DataFrame,
    y_val: IntArray,
    params: Params,
    target: str = "target",
    refit: tuple[pd.DataFrame, IntArray] | None = None,
    refit_booster: RefitBooster = refit_local,
    fit_sets: _FitSets | None = None,
) -> tuple[lgb.Booster, Calibrator]:
    """LightGBM with early stopping on the validation rows, then a calibrator fitted on them.

    With `refit=(X_known, y_known)` and `lightgbm.refit`, the returned booster is refitted on
    those rows with the early-stopped number of rounds by `refit_booster` (the calibrator stays
    the one fitted on the first booster's validation scores). `fit_sets` (Datasets of these
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
        fit_sets = _FitSets(X_train, X_val, categorical)
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
    calibrator = fit_calibrator(
        booster.predict(X_val, raw_score=True), y_val, params.calibration.method
    )
    if refit is not None and params.lightgbm.refit:
        X_known, y_known = refit
        if y_known.min() != y_known.max():
            booster = refit_booster(booster_params, X_known, y_known, categorical, best)
    return booster, calibrator


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


def _rank_auc(y: IntArray, score: Any) -> float:
    """ROC AUC via the Mann-Whitney rank sum (fast; ties get average ranks)."""
    return _auc_from_ranks(y, pd.Series(score).rank(method="average").to_numpy(np.float64))


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


class _Baselines:
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


# --- the trained model ------------------------------------------------------------------------


PREDICTION_COLUMNS = ("cutoff", "target", "model", "account_id", "y", "p")


@dataclass
class TrainedModel:
    """Boosters and calibrators per target, with everything needed to score and to audit."""

    boosters: dict[str, lgb.Booster]
    calibrators: dict[str, Calibrator]
    features: list[str]
    categorical_features: list[str]
    categories: Categories
    params: Params
    metrics: list[dict[str, Any]]  # backtest: one record per cut-off, target and model
    training_window_start: date  # first snapshot_date used (train)
    training_window_end: date  # last snapshot_date used (validation)
    validation_start: date
    # rows the final boosters learned from: all complete rows with refit (a sample of them past
    # lightgbm.max_fit_rows)
    n_rows: int
    n_train_rows: int  # rows of the early-stopping fit
    n_validation_rows: int  # held out for early stopping and calibration
    expansion_mrr_ratio: float  # mean expansion_mrr_usd_next / mrr_usd on positive rows
    best_iterations: dict[str, int] = field(default_factory=dict)
    version: str | None = None  # set by the registry
    # Backtest test-row predictions (PREDICTION_COLUMNS; p is a score for single_rule), for
    # charts and audits; None for models saved before they were kept.
    backtest_predictions: pd.DataFrame | None = None
    offer_values: OfferValues | None = None  # None: models saved before offer values
    code_version: str | None = None  # set by the registry
    data_fingerprint: str | None = None  # set by the registry
    trained_at: str | None = None  # ISO UTC, set by the registry

    @property
    def targets(self) -> list[str]:
        return list(self.boosters)

    def raw_scores(self, X: pd.DataFrame, target: str) -> FloatArray:
        """Booster log-odds for `target`."""
        if X.empty:
            return np.zeros(0, dtype=np.float64)
        return np.asarray(self.boosters[target].predict(X[self.features], raw_score=True))

    def predict_proba(self, X: pd.DataFrame) -> pd.DataFrame:
        """Calibrated probabilities, one `p_<target>` column per target, index of X."""
        return pd.DataFrame(
            {f"p_{t}": self.calibrators[t].predict(self.raw_scores(X, t)) for t in self.boosters},
            index=X.index,
        )

    def metrics_frame(self) -> pd.DataFrame:
        """Backtest metrics as a DataFrame (cutoff, target, model, metrics, split sizes)."""
        return pd.DataFrame(self.metrics)

    def latest_cutoff(self) -> str | None:
        """ISO date of the latest backtest cut-off, None when the backtest had none."""
        cutoffs = sorted({str(r["cutoff"]) for r in self.metrics})
        return cutoffs[-1] if cutoffs else None

    def metrics_at(
        self, cutoff: str, target: str | None = None, model: str = "lightgbm"
    ) -> dict[str, Any] | None:
        """The stored backtest record for a cut-off (default: primary target, LightGBM)."""
        target = target or self.params.primary_target
        for record in self.metrics:
            if (
                record["cutoff"] == cutoff
                and record["target"] == target
                and record["model"] == model
            ):
                return dict(record)
        return None


def _record(
    split: Split,
    target: str,
    model: str,
    metrics: dict[str, float],
    n_train: int,
    n_validation: int,
    detail: str = "",
    n_known: int | None = None,
) -> dict[str, Any]:
    assert split.test_date is not None
    return {
        "cutoff": split.test_date.date().isoformat(),
        "target": target,
        "model": model,
        **metrics,
        "train_start": split.train_dates[0].date().isoformat(),
        "train_end": split.train_dates[-1].date().isoformat(),
        "validation_start": split.validation_dates[0].date().isoformat(),
        "validation_end": split.validation_dates[-1].date().isoformat(),
        "n_train": n_train,
        "n_validation": n_validation,
        "n_known": n_train + n_validation if n_known is None else n_known,
        "detail": detail,
    }


def _nan_metrics(n: int, n_pos: int) -> dict[str, float]:
    out = binary_metrics([], [])
    out["n"], out["n_pos"] = float(n), float(n_pos)
    return out


def _known_rows(frame: pd.DataFrame, end: pd.Timestamp, params: Params) -> pd.DataFrame:
    """Rows whose label window ends by `end` (snapshot_date + H <= end)."""
    horizon = pd.Timedelta(days=params.label_horizon_days)
    return frame.loc[frame["snapshot_date"] + horizon <= end]


def _categorical(X: pd.DataFrame, params: Params) -> list[str]:
    return [c for c in params.features.categorical if c in X.columns]


def fit_sample(rows: pd.DataFrame, max_rows: int | None) -> BoolArray:
    """Which of `rows` the boosters and baselines learn from: all of them up to `max_rows`
    (`lightgbm.max_fit_rows`; None: no cap), else each row with probability max_rows / len(rows),
    decided by a hash of (account_id, snapshot_date). The draw ignores the labels (so the
    probabilities need no reweighting), the row order and the other rows (a row is in or out
    in every split and every run)."""
    if max_rows is None or len(rows) <= max_rows:
        return np.ones(len(rows), dtype=bool)
    keys = pd.DataFrame(
        {
            "account_id": rows["account_id"].astype(str).to_numpy(),
            "snapshot_date": rows["snapshot_date"].to_numpy(),
        }
    )
    hashed = pd.util.hash_pandas_object(keys, index=False).to_numpy()
    # uint64 hash below rate x 2^64, i.e. its top 53 bits (a float64 in [0, 1)) below the rate
    unit = (hashed >> np.uint64(11)).astype(np.float64) / float(2**53)
    return np.asarray(unit < max_rows / len(rows), dtype=bool)


@dataclass(frozen=True)
class _SplitMatrices:
    """Rows and feature matrices of one split. `known` rows are those the refit and the
    baselines learn from (a hash sample of them past `lightgbm.max_fit_rows`), `train` those of
    the early-stopping fit (the sampled known rows before the validation window); validation
    rows are never sampled (early stopping and calibration see the real mix)."""

    train: pd.DataFrame
    val: pd.DataFrame
    known: pd.DataFrame
    X_train: pd.DataFrame
    X_val: pd.DataFrame
    X_known: pd.DataFrame
    categories: Categories
    n_known_all: int  # known rows before sampling

    @property
    def sampled(self) -> bool:
        return len(self.known) < self.n_known_all


def _split_matrices(known: pd.DataFrame, split: Split, params: Params) -> _SplitMatrices:
    """Rows and feature matrices of a split whose known rows (train and validation among
    them) are `known`.

    The features are computed once for the rows needed and the matrices sliced from them
    (prepare_features works row by row once the categories are fixed). The categories come
    from every known row with `lightgbm.refit` (the refit learns from them), else from train.
    """
    in_train = known["snapshot_date"].isin(list(split.train_dates)).to_numpy()
    in_val = known["snapshot_date"].isin(list(split.validation_dates)).to_numpy()
    keep = fit_sample(known, params.lightgbm.max_fit_rows)
    categories = fit_categories(known if params.lightgbm.refit else known.loc[in_train], params)
    needed = keep | in_val
    X, _ = prepare_features(known.loc[needed], params, categories)
    in_train, in_val, keep = in_train[needed], in_val[needed], keep[needed]
    rows = known.loc[needed]
    return _SplitMatrices(
        train=rows.loc[in_train & keep],
        val=rows.loc[in_val],
        known=rows.loc[keep],
        X_train=X.loc[in_train & keep],
        X_val=X.loc[in_val],
        X_known=X.loc[keep],
        categories=categories,
        n_known_all=len(known),
    )


def _predictions(
    split: Split, target: str, model: str, test: pd.DataFrame, y: IntArray, p: Any
) -> pd.DataFrame:
    assert split.test_date is not None
    return pd.DataFrame(
        {
            "cutoff": split.test_date.date().isoformat(),
            "target": target,
            "model": model,
            "account_id": test["account_id"].astype(str).to_numpy(),
            "y": y.astype(np.int8),
            "p": np.asarray(p, dtype=np.float64),
        }
    )


def run_backtest(frame: pd.DataFrame, params: Params) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Metrics and test-row predictions of calibrated LightGBM and the baselines per cut-off.

    `frame` is the output of `training_frame`. Models: lightgbm (calibrated),
    lightgbm_uncalibrated, logistic (baseline) and single_rule (best one-feature ranking).
    Returns (records, predictions with PREDICTION_COLUMNS).
    """
    records: list[dict[str, Any]] = []
    predictions: list[pd.DataFrame] = []
    for split in backtest_splits(frame["snapshot_date"].unique(), params):
        assert split.test_date is not None
        known = _known_rows(frame, split.test_date, params)
        test = _rows(frame, (split.test_date,))
        m = _split_matrices(known, split, params)
        X_test, _ = prepare_features(test, params, m.categories)
        sizes = (len(m.train), len(m.val))
        n_known = len(m.known) if params.lightgbm.refit else None
        fit_sets = _FitSets(m.X_train, m.X_val, _categorical(m.X_train, params))
        refit_booster = _LocalRefit()
        # Baselines need no held-out rows: they learn from every (sampled) row known at the
        # cut-off.
        base_rows, X_base = (m.known, m.X_known) if params.lightgbm.refit else (m.train, m.X_train)
        baselines: _Baselines | None = None
        sample_note = (
            f"; a {len(m.known):,}-row sample of {m.n_known_all:,} known rows "
            "(lightgbm.max_fit_rows)"
            if m.sampled
            else ""
        )
        for target, label in params.targets.items():
            y_train, y_val, y_test = (label_array(f, label) for f in (m.train, m.val, test))
            y_known = label_array(m.known, label)
            try:
                booster, calibrator = fit_booster(
                    m.X_train,
                    y_train,
                    m.X_val,
                    y_val,
                    params,
                    target,
                    refit=(m.X_known, y_known),
                    refit_booster=refit_booster,
                    fit_sets=fit_sets,
                )
            except InsufficientLabelsError as exc:
                empty = _nan_metrics(len(y_test), int(y_test.sum()))
                records.append(_record(split, target, "lightgbm", empty, *sizes, str(exc), n_known))
                continue
            raw = np.asarray(booster.predict(X_test, raw_score=True), dtype=np.float64)
            refitted = "; refit on known rows" if params.lightgbm.refit else ""
            iters = f"best_iteration={booster.current_iteration()}{refitted}{sample_note}"
            p_cal = calibrator.predict(raw)
            p_raw = 1.0 / (1.0 + np.exp(-raw))
            records.append(
                _record(
                    split,
                    target,
                    "lightgbm",
                    binary_metrics(y_test, p_cal),
                    *sizes,
                    f"{iters}; calibration={calibrator.method}",
                    n_known,
                )
            )
            records.append(
                _record(
                    split,
                    target,
                    "lightgbm_uncalibrated",
                    binary_metrics(y_test, p_raw),
                    *sizes,
                    iters,
                    n_known,
                )
            )
            if baselines is None:
                baselines = _Baselines(X_base, X_test, params)
            y_base = label_array(base_rows, label)
            p_logistic = baselines.logistic(y_base)
            records.append(
                _record(
                    split,
                    target,
                    "logistic",
                    binary_metrics(y_test, p_logistic),
                    len(X_base),
                    0,
                    "fitted on every row known at the cut-off" + sample_note
                    if params.lightgbm.refit
                    else "",
                    len(X_base),
                )
            )
            rule = baselines.single_rule(y_base)
            direction = "higher" if rule.sign > 0 else "lower"
            rule_score = rule.score(X_test)
            records.append(
                _record(
                    split,
                    target,
                    "single_rule",
                    binary_metrics(y_test, rule_score, is_probability=False),
                    len(X_base),
                    0,
                    f"{direction} {rule.feature} ranks first",
                    len(X_base),
                )
            )
            for model, p in (
                ("lightgbm", p_cal),
                ("lightgbm_uncalibrated", p_raw),
                ("logistic", p_logistic),
                ("single_rule", rule_score),
            ):
                predictions.append(_predictions(split, target, model, test, y_test, p))
    columns = list(PREDICTION_COLUMNS)
    out = (
        pd.concat(predictions, ignore_index=True) if predictions else pd.DataFrame(columns=columns)
    )
    return records, out.loc[:, columns]


def expansion_mrr_ratio(frame: pd.DataFrame, params: Params) -> float:
    """Mean expansion_mrr_usd_next / mrr_usd over positive expansion rows (clipped), NaN if none."""
    label = params.targets["expansion"]
    for col in ("mrr_usd", "expansion_mrr_usd_next", label):
        if col not in frame.columns:
            raise ValueError(f"marts.account_snapshots is missing {col} (needed for expected MRR)")
    positive = frame[label].astype(bool)
    mrr = as_float(frame["mrr_usd"], "mrr_usd")
    gain = as_float(frame["expansion_mrr_usd_next"], "expansion_mrr_usd_next")
    ok = positive & (mrr > 0) & gain.notna()
    if not ok.any():
        return math.nan
    ratio = (gain[ok] / mrr[ok]).clip(lower=0.0, upper=params.expected_mrr.max_ratio)
    return float(ratio.mean())


def train_model(
    snapshots: pd.DataFrame,
    params: Params,
    backtest: bool = True,
    refit_booster: RefitBooster = refit_local,
) -> TrainedModel:
    """Backtest (unless `backtest=False`), then fit the final per-target models.

    `snapshots` is `marts.account_snapshots` (any row order; only active rows with complete
    labels are used). Same input and params give identical predictions (with the local
    refit). With `lightgbm.refit`, the final boosters learn from every complete row, fitted by
    `refit_booster` (default: in this process; the backtest always refits locally).
    """
    frame = training_frame(snapshots, params)
    metrics, predictions = run_backtest(frame, params) if backtest else ([], None)
    split = final_split(frame["snapshot_date"].unique(), params)
    m = _split_matrices(frame, split, params)
    train, val, categories = m.train, m.val, m.categories
    X_train, X_val, known, X_known = m.X_train, m.X_val, m.known, m.X_known
    if not params.lightgbm.refit:
        known, X_known = pd.concat([train, val]), pd.concat([X_train, X_val])
    fit_sets = _FitSets(X_train, X_val, _categorical(X_train, params))
    if refit_booster is refit_local:
        refit_booster = _LocalRefit()  # the same boosters, each split's rows binned once
    boosters: dict[str, lgb.Booster] = {}
    calibrators: dict[str, Calibrator] = {}
    for target, label in params.targets.items():
        booster, calibrator = fit_booster(
            X_train,
            label_array(train, label),
            X_val,
            label_array(val, label),
            params,
            target,
            refit=(X_known, label_array(known, label)),
            refit_booster=refit_booster,
            fit_sets=fit_sets,
        )
        boosters[target], calibrators[target] = booster, calibrator
    return TrainedModel(
        boosters=boosters,
        calibrators=calibrators,
        features=params.features.all,
        categorical_features=list(params.features.categorical),
        categories=categories,
        params=params,
        metrics=metrics,
        training_window_start=split.train_dates[0].date(),
        training_window_end=split.validation_dates[-1].date(),
        validation_start=split.validation_dates[0].date(),
        n_rows=len(known),
        n_train_rows=len(train),
        n_validation_rows=len(val),
        expansion_mrr_ratio=expansion_mrr_ratio(frame, params),
        best_iterations={t: b.current_iteration() for t, b in boosters.items()},
        backtest_predictions=predictions,
        offer_values=fit_offer_values(frame, params),
    )


# --- champion / challenger comparison -----------------------------------------------------------


def evaluate_on_date(
    model: TrainedModel, snapshots: pd.DataFrame, test_date: DateLike
) -> list[dict[str, Any]]:
    """Metrics of a trained model's calibrated probabilities on one complete snapshot date.

    Refuses dates whose label window overlaps what the model was fitted on (test_date must be
    at least label_horizon_days after the model's last validation date).
    """
    day = to_timestamp(test_date)
    horizon = pd.Timedelta(days=model.params.label_horizon_days)
    seen_until = pd.Timestamp(model.training_window_end) + horizon
    if day < seen_until:
        raise ValueError(
            f"model {model.version or '(unsaved)'} used labels up to {seen_until.date()}; "
            f"evaluating it on snapshot_date {day.date()} would leak"
        )
    frame = training_frame(snapshots, model.params)
    test = frame.loc[frame["snapshot_date"] == day]
    if test.empty:
        raise ValueError(f"no active rows with complete labels at snapshot_date {day.date()}")
    X, _ = prepare_features(test, model.params, model.categories)
    probs = model.predict_proba(X)
    records = []
    for target, label in model.params.targets.items():
        if target not in model.boosters:
            continue
        metrics = binary_metrics(label_array(test, label), probs[f"p_{target}"])
        records.append(
            {
                "cutoff": day.date().isoformat(),
                "target": target,
                "model": "lightgbm",
                **metrics,
                "detail": f"final model {model.version or '(unsaved)'} evaluated out of time",
            }
        )
    return records


def comparable_metrics(
    challenger: TrainedModel, champion: TrainedModel, snapshots: pd.DataFrame
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Challenger and champion metrics (primary target, calibrated LightGBM) on one window.

    The window is the challenger's latest cut-off c. The champion's number is, in order: its
    own stored backtest record for c (same data, e.g. a retrain); its final model evaluated on
    c when that does not leak; else both sides fall back to their latest common cut-off.
    """
    target = challenger.params.primary_target
    cutoff = challenger.latest_cutoff()
    if cutoff is None:
        raise ValueError("the challenger has no backtest metrics; train with backtest=True")
    mine = challenger.metrics_at(cutoff, target)
    assert mine is not None
    stored = champion.metrics_at(cutoff, target)
    if stored is not None:
        return mine, stored
    horizon = pd.Timedelta(days=champion.params.label_horizon_days)
    if pd.Timestamp(cutoff) >= pd.Timestamp(champion.training_window_end) + horizon:
        fresh = [r for r in evaluate_on_date(champion, snapshots, cutoff) if r["target"] == target]
        return mine, fresh[0]
    common = sorted(
        {str(r["cutoff"]) for r in challenger.metrics}
        & {str(r["cutoff"]) for r in champion.metrics}
    )
    for day in reversed(common):
        a, b = challenger.metrics_at(day, target), champion.metrics_at(day, target)
        if a is not None and b is not None:
            return a, b
    raise ValueError(
        f"challenger (latest cut-off {cutoff}) and champion {champion.version} share no "
        "backtest window and the champion cannot be evaluated on it without leakage"
    )
