"""The time-ordered backtest: per cut-off (`models.splits`) and target, the calibrated
LightGBM (`models.booster`) and the baselines (`models.baselines`), scored on the cut-off's
test rows. Test rows are never seen by any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from models.arrays import IntArray
from models.baselines import Baselines
from models.booster import FitSets, LocalRefit, OutOfFold, categorical_columns, fit_booster
from models.evaluate import binary_metrics
from models.features import InsufficientLabelsError, label_array, prepare_features
from models.params import Params
from models.splits import Split, backtest_splits, known_rows, rows_at, split_matrices

Progress = Callable[[int, int], None]  # (steps done, steps in all): a caller's progress bar

# Columns of the backtest's test-row predictions (`TrainedModel.backtest_predictions`).
PREDICTION_COLUMNS = ("cutoff", "target", "model", "account_id", "y", "p")


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


def run_backtest(
    frame: pd.DataFrame, params: Params, progress: Progress | None = None
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Metrics and test-row predictions of calibrated LightGBM and the baselines per cut-off.

    `frame` is the output of `training_frame`. Models: lightgbm (calibrated),
    lightgbm_uncalibrated, logistic (baseline) and single_rule (best one-feature ranking).
    Returns (records, predictions with PREDICTION_COLUMNS). `progress(done, total)` is called
    as each cut-off is done (a caller's progress bar; nothing is printed here).
    """
    records: list[dict[str, Any]] = []
    predictions: list[pd.DataFrame] = []
    splits = backtest_splits(frame["snapshot_date"].unique(), params)
    for done, split in enumerate(splits):
        if progress is not None:
            progress(done, len(splits))
        assert split.test_date is not None
        known = known_rows(frame, split.test_date, params)
        test = rows_at(frame, (split.test_date,))
        m = split_matrices(known, split, params)
        X_test, _ = prepare_features(test, params, m.categories)
        sizes = (len(m.train), len(m.val))
        n_known = len(m.known) if params.lightgbm.refit else None
        fit_sets = FitSets(m.X_train, m.X_val, categorical_columns(m.X_train, params))
        refit_booster = LocalRefit()
        out_of_fold = OutOfFold(params.calibration.refit_folds)  # the calibrators' folds
        # Baselines need no held-out rows: they learn from every (sampled) row known at the
        # cut-off.
        base_rows, X_base = (m.known, m.X_known) if params.lightgbm.refit else (m.train, m.X_train)
        baselines: Baselines | None = None
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
                    refit_groups=m.known["account_id"].to_numpy(),
                    out_of_fold=out_of_fold,
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
                baselines = Baselines(X_base, X_test, params)
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
    if progress is not None:
        progress(len(splits), len(splits))
    return records, out.loc[:, columns]
