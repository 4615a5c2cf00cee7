"""Metrics of a binary probability model: ranking, calibration and top-decile lift."""
# ECE uses ECE_BINS equal-width bins everywhere (backtest records, scripts/evaluate.py, report).

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

NAN = float("nan")
ECE_BINS = 10
METRIC_NAMES: tuple[str, ...] = (
    "roc_auc",
    "pr_auc",
    "brier",
    "ece",
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
    """ROC AUC, PR AUC, Brier, ECE, base rate, lift and capture in the top decile, n, n_pos.

    Undefined values (one class only, empty input; Brier and ECE of a non-probability score)
    are NaN.
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
        out["ece"] = expected_calibration_error(y_arr, p_arr, ECE_BINS)
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


def roc_points(y: Any, p: Any) -> pd.DataFrame:
    """ROC curve points (fpr, tpr), from (0, 0) to (1, 1); empty with one class only."""
    y_arr, p_arr = _arrays(y, p)
    if y_arr.size == 0 or y_arr.min() == y_arr.max():
        return pd.DataFrame({"fpr": [], "tpr": []})
    fpr, tpr, _ = roc_curve(y_arr, p_arr, drop_intermediate=True)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr})


def gain_table(y: Any, p: Any, bins: int = 10) -> pd.DataFrame:
    """Lift and cumulative gain per score bin (bin 1 = highest scores; ties by position).

    Columns: bin, n, n_pos, rate, lift (rate / base rate), cum_share (share of rows in bins
    1..k), cum_capture (share of all positives in bins 1..k).
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    y_arr, p_arr = _arrays(y, p)
    n = y_arr.size
    columns = ["bin", "n", "n_pos", "rate", "lift", "cum_share", "cum_capture"]
    if n == 0:
        return pd.DataFrame(columns=columns)
    order = np.argsort(-p_arr, kind="mergesort")
    bin_of = np.empty(n, dtype=np.int64)
    bin_of[order] = (np.arange(n) * bins) // n + 1
    frame = pd.DataFrame({"bin": bin_of, "y": y_arr})
    table = frame.groupby("bin")["y"].agg(n="size", n_pos="sum").reset_index()
    base = y_arr.mean()
    table["rate"] = table["n_pos"] / table["n"]
    table["lift"] = table["rate"] / base if base > 0 else NAN
    table["cum_share"] = table["n"].cumsum() / n
    total = max(int(y_arr.sum()), 1)
    table["cum_capture"] = table["n_pos"].cumsum() / total
    return table[columns]


BACKTEST_TABLE_COLUMNS: tuple[str, ...] = (
    "cutoff",
    "n",
    "n_pos",
    "base_rate",
    "auc",
    "oracle_auc",
    "auc_ratio",
    "baseline_auc",
    "pr_auc",
    "brier",
    "ece",
    "top_decile_lift",
    "capture",
)


def oracle_on_rows(rows: pd.DataFrame, oracle: pd.DataFrame, column: str) -> pd.Series:
    """The oracle's `column` for backtest rows (account_id, cutoff); a clear error on gaps.

    `oracle` has account_id, snapshot_date and `column` (the demo generator's
    expansion_oracle.parquet); cut-offs are snapshot dates.
    """
    missing = [c for c in ("account_id", "snapshot_date", column) if c not in oracle.columns]
    if missing:
        raise ValueError(f"oracle is missing column(s) {missing}")
    keys = pd.DataFrame(
        {
            "account_id": rows["account_id"].astype(str).to_numpy(),
            "snapshot_date": pd.to_datetime(rows["cutoff"]).to_numpy(),
        }
    )
    right = oracle.loc[:, ["account_id", "snapshot_date", column]].copy()
    right["account_id"] = right["account_id"].astype(str)
    right["snapshot_date"] = pd.to_datetime(right["snapshot_date"]).dt.normalize()
    right = right.drop_duplicates(["account_id", "snapshot_date"])
    merged = keys.merge(right, on=["account_id", "snapshot_date"], how="left", validate="m:1")
    gaps = merged[merged[column].isna()]
    if len(gaps):
        example = gaps.iloc[0]
        raise ValueError(
            f"oracle has no {column} for {len(gaps)} backtest row(s), e.g. account "
            f"{example['account_id']} at {example['snapshot_date'].date()}; is it the oracle of "
            "the same demo data?"
        )
    return pd.Series(merged[column].to_numpy(), index=rows.index)


def backtest_table(
    predictions: pd.DataFrame,
    target: str = "expansion",
    oracle: pd.DataFrame | None = None,
    model: str = "lightgbm",
    baseline: str = "logistic",
    bins: int = ECE_BINS,
) -> pd.DataFrame:
    """Per backtest cut-off: the model's metrics, the baseline's and the oracle's ROC AUC.

    `predictions` holds a model's backtest test rows (cutoff, target, model, account_id, y, p;
    `TrainedModel.backtest_predictions`). With `oracle` (expansion_oracle.parquet), oracle_auc
    is the ROC AUC of p_expansion_90d on the same rows and auc_ratio = auc / oracle_auc.
    Columns: BACKTEST_TABLE_COLUMNS, oldest cut-off first.
    """
    rows = predictions.loc[predictions["target"] == target]
    out = []
    for cutoff, at in rows.groupby("cutoff", sort=True):
        mine = at.loc[at["model"] == model].sort_values("account_id", kind="mergesort")
        if mine.empty:
            continue
        m = binary_metrics(mine["y"], mine["p"])
        m["ece"] = expected_calibration_error(mine["y"], mine["p"], bins)
        base = at.loc[at["model"] == baseline]
        base_auc = (
            binary_metrics(base["y"], base["p"], is_probability=False)["roc_auc"]
            if not base.empty
            else NAN
        )
        oracle_auc = NAN
        if oracle is not None:
            p_oracle = oracle_on_rows(mine, oracle, "p_expansion_90d")
            y = mine["y"].to_numpy()
            oracle_auc = binary_metrics(y, p_oracle.to_numpy())["roc_auc"]
        out.append(
            {
                "cutoff": str(cutoff),
                "n": int(m["n"]),
                "n_pos": int(m["n_pos"]),
                "base_rate": m["base_rate"],
                "auc": m["roc_auc"],
                "oracle_auc": oracle_auc,
                "auc_ratio": m["roc_auc"] / oracle_auc if oracle_auc > 0 else NAN,
                "baseline_auc": base_auc,
                "pr_auc": m["pr_auc"],
                "brier": m["brier"],
                "ece": m["ece"],
                "top_decile_lift": m["lift_top_decile"],
                "capture": m["capture_top_decile"],
            }
        )
    return pd.DataFrame(out, columns=list(BACKTEST_TABLE_COLUMNS))
