"""Feature drift between the champion's training rows and the rows about to be scored.

The population stability index (PSI) per model feature:

    PSI = sum over bins of (score_share - train_share) * ln(score_share / train_share)

Numeric features use `bins` quantile bins cut on the training distribution at observed values
(right-closed; fewer when quantiles coincide, e.g. for counts, and values above the training
range get the top bin), with missing values as a bin of their own; categorical
features bin by category (training categories, plus missing and "unseen"). Shares are
epsilon-smoothed, (share + eps) / (1 + bins * eps), so an empty bin costs a bounded amount
instead of infinity. The usual reading: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25
a different population. The thresholds the gate applies live in
`expectations/drift_account_snapshots.json`.

Pure functions on DataFrames; `flows.stages.check_drift` reads the rows and runs the suite.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

MISSING = "<missing>"
UNSEEN = "<unseen>"
PSI_COLUMNS = [
    "feature",
    "kind",
    "psi",
    "bins",
    "train_rows",
    "score_rows",
    "train_missing_share",
    "score_missing_share",
    "top_shift_bin",
]


def _smooth(shares: np.ndarray[Any, Any], eps: float) -> np.ndarray[Any, Any]:
    return (shares + eps) / (1.0 + eps * len(shares))


def _psi(train: np.ndarray[Any, Any], score: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Per-bin PSI terms of two (smoothed) share vectors."""
    terms: np.ndarray[Any, Any] = (score - train) * np.log(score / train)
    return terms


def _to_float(series: pd.Series) -> np.ndarray[Any, Any]:
    if pd.api.types.is_bool_dtype(series) or series.dtype == object:
        series = series.astype("Float64")
    return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy(na_value=np.nan)


def numeric_bins(train: pd.Series, score: pd.Series, bins: int = 10) -> pd.DataFrame:
    """Counts per quantile bin of the training distribution (plus a missing-values bin)."""
    a, b = _to_float(train), _to_float(score)
    known = a[~np.isnan(a)]
    edges = (
        np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)[1:-1], method="lower"))
        if len(known)
        else np.array([])
    )
    labels = [f"<= {edges[0]:.6g}"] if len(edges) else ["all"]
    labels += [f"({lo:.6g}, {hi:.6g}]" for lo, hi in itertools.pairwise(edges)]
    if len(edges):
        labels.append(f"> {edges[-1]:.6g}")

    def counts(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        missing = np.isnan(x)
        idx = np.searchsorted(edges, x[~missing], side="left")  # right-closed bins
        return np.append(np.bincount(idx, minlength=len(edges) + 1), missing.sum())

    return pd.DataFrame({"bin": [*labels, MISSING], "train": counts(a), "score": counts(b)}).astype(
        {"train": "int64", "score": "int64"}
    )


def categorical_bins(train: pd.Series, score: pd.Series) -> pd.DataFrame:
    """Counts per training category (plus missing and categories unseen in training)."""

    def labels(s: pd.Series) -> pd.Series:
        return s.astype(object).where(s.notna(), MISSING).astype(str)

    a, b = labels(train), labels(score)
    categories = sorted(set(a) - {MISSING})
    b = b.where(b.isin([*categories, MISSING]), UNSEEN)
    keys = [*categories, MISSING, UNSEEN]
    return pd.DataFrame(
        {
            "bin": keys,
            "train": a.value_counts().reindex(keys, fill_value=0).to_numpy(),
            "score": b.value_counts().reindex(keys, fill_value=0).to_numpy(),
        }
    ).astype({"train": "int64", "score": "int64"})


def psi_from_bins(counts: pd.DataFrame, epsilon: float = 1e-4) -> tuple[float, str]:
    """PSI of a bin table (columns train, score) and the bin contributing most."""
    train = counts["train"].to_numpy(dtype=float)
    score = counts["score"].to_numpy(dtype=float)
    p = _smooth(train / max(train.sum(), 1.0), epsilon)
    q = _smooth(score / max(score.sum(), 1.0), epsilon)
    terms = _psi(p, q)
    top = str(counts["bin"].iloc[int(np.argmax(terms))]) if len(terms) else ""
    return float(terms.sum()), top


def population_stability(
    train: pd.DataFrame,
    score: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    bins: int = 10,
    epsilon: float = 1e-4,
) -> pd.DataFrame:
    """One row per feature: PSI of `score` against `train` (columns PSI_COLUMNS).

    A feature missing from either frame gets PSI NaN (the suite then fails on it).
    """
    records = []
    for feature, kind in [
        *((f, "numeric") for f in numeric),
        *((f, "categorical") for f in categorical),
    ]:
        if feature not in train.columns or feature not in score.columns:
            psi, top, n_bins, a_missing, b_missing = np.nan, "feature missing", 0, np.nan, np.nan
        else:
            table = (
                numeric_bins(train[feature], score[feature], bins)
                if kind == "numeric"
                else categorical_bins(train[feature], score[feature])
            )
            psi, top = psi_from_bins(table, epsilon)
            n_bins = len(table)
            a_missing = float(train[feature].isna().mean()) if len(train) else np.nan
            b_missing = float(score[feature].isna().mean()) if len(score) else np.nan
        records.append(
            {
                "feature": feature,
                "kind": kind,
                "psi": psi,
                "bins": n_bins,
                "train_rows": len(train),
                "score_rows": len(score),
                "train_missing_share": a_missing,
                "score_missing_share": b_missing,
                "top_shift_bin": top,
            }
        )
    return pd.DataFrame.from_records(records, columns=PSI_COLUMNS)
