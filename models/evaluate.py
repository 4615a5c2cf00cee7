"""Metrics of a binary probability model: ranking, calibration and top-decile lift."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

NAN = float("nan")
METRIC_NAMES: tuple[str, ...] = (
    "roc_auc",
    "pr_auc",
    "brier",
    "base_rate",
    "lift_top_decile",
    "capture_top_decile",
    "n",
    "n_pos",
)


def _arrays(y: Any, p: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    y_arr = np.asarray(y, dtype=float).ravel()
    p_arr = np.asarray(p, dtype=float).ravel()
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"labels and scores differ in length: {y_arr.size} vs {p_arr.size}")
    if np.isnan(y_arr).any() or not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1 (or booleans) without nulls")
    if np.isnan(p_arr).any():
        raise ValueError("scores must not contain NaN")
    return y_arr.astype(int), p_arr


def top_decile_mask(p: Any) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """True for the ceil(10%) highest scores (ties broken by position, stable)."""
    p_arr = np.asarray(p, dtype=float).ravel()
    n_top = math.ceil(0.1 * p_arr.size)
    order = np.argsort(-p_arr, kind="mergesort")
    mask = np.zeros(p_arr.size, dtype=bool)
    mask[order[:n_top]] = True
    return mask


def binary_metrics(y: Any, p: Any, *, is_probability: bool = True) -> dict[str, float]:
    """ROC AUC, PR AUC, Brier, base rate, lift and capture in the top decile, n, n_pos.

    Undefined values (one class only, empty input; Brier of a non-probability score) are NaN.
    """
    y_arr, p_arr = _arrays(y, p)
    n = int(y_arr.size)
    n_pos = int(y_arr.sum())
    out = dict.fromkeys(METRIC_NAMES, NAN)
    out["n"], out["n_pos"] = float(n), float(n_pos)
    if n == 0:
        return out
    base_rate = n_pos / n
    out["base_rate"] = base_rate
    if is_probability and ((p_arr < 0).any() or (p_arr > 1).any()):
        raise ValueError("probabilities must lie in [0, 1]; pass is_probability=False for scores")
    if is_probability:
        out["brier"] = float(brier_score_loss(y_arr, p_arr, labels=[0, 1]))
    if 0 < n_pos < n:
        out["roc_auc"] = float(roc_auc_score(y_arr, p_arr))
        out["pr_auc"] = float(average_precision_score(y_arr, p_arr))
    if n_pos > 0:
        top = top_decile_mask(p_arr)
        out["lift_top_decile"] = float(y_arr[top].mean() / base_rate)
        out["capture_top_decile"] = float(y_arr[top].sum() / n_pos)
    return out


def calibration_table(y: Any, p: Any, bins: int = 10) -> pd.DataFrame:
    """Reliability table on `bins` equal-width probability bins (empty bins dropped).

    Columns: bin, p_low, p_high, n, n_pos, mean_predicted, observed_rate.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    y_arr, p_arr = _arrays(y, p)
    if ((p_arr < 0) | (p_arr > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p_arr, edges[1:-1], right=False), 0, bins - 1)
    rows = []
    for b in range(bins):
        in_bin = idx == b
        count = int(in_bin.sum())
        if count == 0:
            continue
        rows.append(
            {
                "bin": b + 1,
                "p_low": float(edges[b]),
                "p_high": float(edges[b + 1]),
                "n": count,
                "n_pos": int(y_arr[in_bin].sum()),
                "mean_predicted": float(p_arr[in_bin].mean()),
                "observed_rate": float(y_arr[in_bin].mean()),
            }
        )
    columns = ["bin", "p_low", "p_high", "n", "n_pos", "mean_predicted", "observed_rate"]
    return pd.DataFrame(rows, columns=columns)


def expected_calibration_error(y: Any, p: Any, bins: int = 10) -> float:
    """Count-weighted mean |observed rate - mean predicted| over the calibration bins."""
    table = calibration_table(y, p, bins)
    if table.empty:
        return NAN
    gap = (table["observed_rate"] - table["mean_predicted"]).abs()
    return float((gap * table["n"]).sum() / table["n"].sum())
