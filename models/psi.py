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

Pure functions on DataFrames; the pipeline's drift gate (`flows/quality/drift.py`) reads the
rows and runs the suite. The training side reduces to a small `reference` (bins and training
counts per feature), which the drift check keeps per champion version, so a daily run reads
only the rows to score.
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


def numeric_edges(train: pd.Series, bins: int = 10) -> np.ndarray[Any, Any]:
    """Quantile bin edges of the training distribution (at observed values, deduplicated)."""
    known = _to_float(train)
    known = known[~np.isnan(known)]
    if not len(known):
        return np.array([])
    edges: np.ndarray[Any, Any] = np.unique(
        np.quantile(known, np.linspace(0, 1, bins + 1)[1:-1], method="lower")
    )
    return edges


def numeric_counts(values: pd.Series, edges: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Counts per right-closed bin of `edges` (values above the top edge in the top bin),
    then the missing values."""
    x = _to_float(values)
    missing = np.isnan(x)
    idx = np.searchsorted(edges, x[~missing], side="left")
    return np.append(np.bincount(idx, minlength=len(edges) + 1), missing.sum())


def numeric_labels(edges: np.ndarray[Any, Any]) -> list[str]:
    labels = [f"<= {edges[0]:.6g}"] if len(edges) else ["all"]
    labels += [f"({lo:.6g}, {hi:.6g}]" for lo, hi in itertools.pairwise(edges)]
    if len(edges):
        labels.append(f"> {edges[-1]:.6g}")
    return [*labels, MISSING]


def numeric_bins(train: pd.Series, score: pd.Series, bins: int = 10) -> pd.DataFrame:
    """Counts per quantile bin of the training distribution (plus a missing-values bin)."""
    edges = numeric_edges(train, bins)
    return pd.DataFrame(
        {
            "bin": numeric_labels(edges),
            "train": numeric_counts(train, edges),
            "score": numeric_counts(score, edges),
        }
    ).astype({"train": "int64", "score": "int64"})


def _category_labels(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), MISSING).astype(str)


def categorical_counts(values: pd.Series, categories: list[str]) -> np.ndarray[Any, Any]:
    """Counts per training category, then missing, then categories unseen in training."""
    labels = _category_labels(values)
    labels = labels.where(labels.isin([*categories, MISSING]), UNSEEN)
    counts: np.ndarray[Any, Any] = (
        labels.value_counts().reindex([*categories, MISSING, UNSEEN], fill_value=0).to_numpy()
    )
    return counts


def categorical_bins(train: pd.Series, score: pd.Series) -> pd.DataFrame:
    """Counts per training category (plus missing and categories unseen in training)."""
    categories = sorted(set(_category_labels(train)) - {MISSING})
    return pd.DataFrame(
        {
            "bin": [*categories, MISSING, UNSEEN],
            "train": categorical_counts(train, categories),
            "score": categorical_counts(score, categories),
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


def reference(
    train: pd.DataFrame, numeric: list[str], categorical: list[str], bins: int = 10
) -> dict[str, Any]:
    """What PSI needs of the training rows, per feature: the bins (edges or categories), the
    training counts in them and the missing share. Small and JSON-serialisable, so it is kept
    per champion instead of reading the training rows again on every run."""
    features: dict[str, Any] = {}
    for feature in [*numeric, *categorical]:
        if feature not in train.columns:
            continue
        column = train[feature]
        if feature in numeric:
            edges = numeric_edges(column, bins)
            entry = {"edges": edges.tolist(), "train": numeric_counts(column, edges).tolist()}
        else:
            categories = sorted(set(_category_labels(column)) - {MISSING})
            entry = {
                "categories": categories,
                "train": categorical_counts(column, categories).tolist(),
            }
        entry["missing_share"] = float(column.isna().mean()) if len(train) else None
        features[feature] = entry
    return {"rows": len(train), "bins": bins, "features": features}


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
    return stability_against(
        reference(train, numeric, categorical, bins), score, numeric, categorical, epsilon
    )


def stability_against(
    ref: dict[str, Any],
    score: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    epsilon: float = 1e-4,
) -> pd.DataFrame:
    """`population_stability` with the training side given as a `reference`."""
    records = []
    for feature, kind in [
        *((f, "numeric") for f in numeric),
        *((f, "categorical") for f in categorical),
    ]:
        entry = ref["features"].get(feature)
        if entry is None or feature not in score.columns:
            psi, top, n_bins, a_missing, b_missing = np.nan, "feature missing", 0, np.nan, np.nan
        else:
            if kind == "numeric":
                edges = np.asarray(entry["edges"], dtype=float)
                labels = numeric_labels(edges)
                counts = numeric_counts(score[feature], edges)
            else:
                labels = [*entry["categories"], MISSING, UNSEEN]
                counts = categorical_counts(score[feature], entry["categories"])
            table = pd.DataFrame({"bin": labels, "train": entry["train"], "score": counts}).astype(
                {"train": "int64", "score": "int64"}
            )
            psi, top = psi_from_bins(table, epsilon)
            n_bins = len(table)
            a_missing = entry["missing_share"] if entry["missing_share"] is not None else np.nan
            b_missing = float(score[feature].isna().mean()) if len(score) else np.nan
        records.append(
            {
                "feature": feature,
                "kind": kind,
                "psi": psi,
                "bins": n_bins,
                "train_rows": ref["rows"],
                "score_rows": len(score),
                "train_missing_share": a_missing,
                "score_missing_share": b_missing,
                "top_shift_bin": top,
            }
        )
    return pd.DataFrame.from_records(records, columns=PSI_COLUMNS)
