"""Train the expansion model: time-ordered backtest, one calibrated LightGBM per target.

`train_model(snapshots, params)` runs the backtest (`models.backtest.run_backtest`) and fits
the final per-target models on the final split (`models.splits.final_split`: the last complete
snapshot date(s) validate, earlier ones train, no test), each a booster with its calibrator
(`models.booster.fit_booster`). The result is a `TrainedModel`: everything needed to score
and to audit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.arrays import FloatArray
from models.backtest import Progress, run_backtest
from models.booster import (
    FitSets,
    LocalRefit,
    OutOfFold,
    RefitBooster,
    categorical_columns,
    fit_booster,
    refit_local,
)
from models.calibration import Calibrator
from models.features import Categories, label_array, training_frame
from models.offers import OfferValues
from models.params import Params
from models.ranking import rank_backtest
from models.splits import final_split, split_matrices


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
    # legacy: what models saved before offers came from the catalogue used for their value
    # (mean expansion_mrr_next / mrr on positive rows); loaded, unused
    expansion_mrr_ratio: float = math.nan
    best_iterations: dict[str, int] = field(default_factory=dict)
    version: str | None = None  # set by the registry
    # Backtest test-row predictions (PREDICTION_COLUMNS; p is a score for single_rule), for
    # charts and audits; None for models saved before they were kept.
    backtest_predictions: pd.DataFrame | None = None
    offer_values: OfferValues | None = None  # legacy, as expansion_mrr_ratio: loaded, unused
    code_version: str | None = None  # set by the registry
    data_fingerprint: str | None = None  # set by the registry
    trained_at: str | None = None  # ISO UTC, set by the registry
    # The action list on the backtest (models/ranking.py): w of the balanced ranking chosen
    # there (`action_list.value_weight: auto`), the figures per cut-off, ranking and N
    # (ranking.FIGURE_KEYS), the same over a grid of N (for the chart) and the scan of w.
    # None / empty: models saved before they were kept, or trained without a backtest.
    action_value_weight: float | None = None
    ranking_metrics: list[dict[str, Any]] = field(default_factory=list)
    ranking_curve: list[dict[str, Any]] = field(default_factory=list)
    value_weight_scan: list[dict[str, Any]] = field(default_factory=list)

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


def train_model(
    snapshots: pd.DataFrame,
    params: Params,
    backtest: bool = True,
    refit_booster: RefitBooster = refit_local,
    owners: Mapping[Any, Any] | pd.Series | None = None,
    progress: Progress | None = None,
) -> TrainedModel:
    """Backtest (unless `backtest=False`), then fit the final per-target models.

    `snapshots` is `marts.account_features` (any row order; only active rows with complete
    labels are used). Same input and params give identical predictions (with the local
    refit). With `lightgbm.refit`, the final boosters learn from every complete row, fitted by
    `refit_booster` (default: in this process; the backtest always refits locally). The
    backtest also measures the action list (`models.ranking.rank_backtest`); `owners`
    (account_id -> owner) counts the owners of per-owner touch-tier capacities there.
    `progress(done, total)` counts the backtest's cut-offs and the final fits (one per
    target) as they finish, for a caller's progress bar.
    """
    frame = training_frame(snapshots, params)
    finals = len(params.targets)
    cutoffs = 0

    def backtest_progress(done: int, total: int) -> None:
        nonlocal cutoffs
        cutoffs = total
        if progress is not None:
            progress(done, total + finals)

    metrics, predictions = (
        run_backtest(frame, params, backtest_progress) if backtest else ([], None)
    )
    split = final_split(frame["snapshot_date"].unique(), params)
    m = split_matrices(frame, split, params)
    train, val, categories = m.train, m.val, m.categories
    X_train, X_val, known, X_known = m.X_train, m.X_val, m.known, m.X_known
    if not params.lightgbm.refit:
        known, X_known = pd.concat([train, val]), pd.concat([X_train, X_val])
    fit_sets = FitSets(X_train, X_val, categorical_columns(X_train, params))
    if refit_booster is refit_local:
        refit_booster = LocalRefit()  # the same boosters, each split's rows binned once
    boosters: dict[str, lgb.Booster] = {}
    calibrators: dict[str, Calibrator] = {}
    out_of_fold = OutOfFold(params.calibration.refit_folds)  # the calibrators' folds
    for fitted, (target, label) in enumerate(params.targets.items()):
        if progress is not None:
            progress(cutoffs + fitted, cutoffs + finals)
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
            refit_groups=known["account_id"].to_numpy(),
            out_of_fold=out_of_fold,
        )
        boosters[target], calibrators[target] = booster, calibrator
    if progress is not None:
        progress(cutoffs + finals, cutoffs + finals)
    ranking = rank_backtest(frame, predictions, params, owners=owners)
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
        best_iterations={t: b.current_iteration() for t, b in boosters.items()},
        backtest_predictions=predictions,
        action_value_weight=ranking.value_weight,
        ranking_metrics=ranking.metrics,
        ranking_curve=ranking.curve,
        value_weight_scan=ranking.scan,
    )
