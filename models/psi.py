"""Feature drift between the champion's training rows and the rows about to be scored.

The population stability index (PSI) per model feature:

    PSI = sum over bins of (score_share - train_share) * ln(score_share / train_share)

Numeric features use `bins` quantile bins cut on the training distribution at observed values
(right-closed; fewer when quantiles coincide, e.g. for counts, and values above the training
range get the top bin), with missing values as a bin of their own; categorical
features bin by category (training categories, plus missing and "unseen"). Shares are
epsilon-smoothed, (share + eps) / (1 + bins * eps), so an empty bin costs a bounded amount
instead of infinity. The usual reading: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25
a different population; the thresholds the gate applies (to the PSI beyond chance, below) live
in `expectations/drift_account_snapshots.json`.

Pure functions on DataFrames; the pipeline's drift gate (`flows/quality/drift.py`) reads the
rows and runs the suite. The training side reduces to a small `reference` (bins and training
counts per feature), which the drift check keeps per champion version, so a daily run reads
only the rows to score.

PSI is a distance between two samples, so it is never exactly 0 even when nothing changed: with
n_ref and n_cur rows and k occupied bins, under no change it is approximately
(1/n_ref + 1/n_cur) x a chi-square with k - 1 degrees of freedom. `chance_psi` is that
distribution's `quantile` (default 99.9%): the PSI chance alone reaches at these counts once in a
thousand. On 300 accounts and 10 bins it is 0.19, above the usual 0.1 "moderate shift"; on 10,000
it is 0.006. A feature counts as drifted only when its PSI exceeds both the threshold and its
chance level (`psi_beyond_chance`).

Features that grow one a day with the calendar (ages, tenures: `shift_days`) are compared with
the reference moved by the days between the reference's date and the date scored, so an
unchanged population of accounts that are simply three months older is not a drift.
"""

from __future__ import annotations

import functools
import heapq
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

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
    "chance_psi",
    "psi_beyond_chance",
    "shift_days",
    "moved_bins",
    "example_accounts",
]
CHANCE_QUANTILE = 0.999
MOVED_BINS = 3  # bins named per drifted feature
EXAMPLE_ACCOUNTS = 5  # account ids named per drifted feature


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
    categories = sorted(set(_category_labels(train).unique()) - {MISSING})
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
            categories = sorted(set(_category_labels(column).unique()) - {MISSING})
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


def chance_psi(
    ref_rows: int, score_rows: int, bins: int, quantile: float = CHANCE_QUANTILE
) -> float:
    """The PSI chance alone exceeds with probability 1 - `quantile` between two samples of
    `ref_rows` and `score_rows` rows from one population, over `bins` occupied bins:
    (1/ref_rows + 1/score_rows) x the chi-square quantile with bins - 1 degrees of freedom.
    Infinite when either side has no rows (nothing can be told)."""
    if ref_rows <= 0 or score_rows <= 0:
        return float("inf")
    return (1.0 / ref_rows + 1.0 / score_rows) * _chi2_quantile(quantile, max(bins - 1, 1))


@functools.cache
def _chi2_quantile(quantile: float, degrees: int) -> float:
    return float(chi2.ppf(quantile, degrees))


def _terms(train: np.ndarray[Any, Any], score: np.ndarray[Any, Any], eps: float) -> Any:
    p = _smooth(train / max(train.sum(), 1.0), eps)
    q = _smooth(score / max(score.sum(), 1.0), eps)
    return _psi(p, q), q > p


def moved_bins(table: pd.DataFrame, epsilon: float = 1e-4, top: int = MOVED_BINS) -> str:
    """The `top` bins contributing most to the PSI of a bin table, with counts and shares:
    "(120, 365]: 30 of 300 (10.0%) -> 95 of 310 (30.6%)"."""
    train = table["train"].to_numpy(dtype=float)
    score = table["score"].to_numpy(dtype=float)
    return _moved(list(map(str, table["bin"])), train, score, _terms(train, score, epsilon)[0], top)


def _moved(
    labels: list[str],
    train: np.ndarray[Any, Any],
    score: np.ndarray[Any, Any],
    terms: np.ndarray[Any, Any],
    top: int = MOVED_BINS,
) -> str:
    n_train, n_score = max(train.sum(), 1.0), max(score.sum(), 1.0)
    order = [i for i in np.argsort(-terms, kind="stable")[:top] if terms[i] > 0]
    return "; ".join(
        f"{labels[i]}: {int(train[i])} of {int(n_train)} ({train[i] / n_train:.1%})"
        f" -> {int(score[i])} of {int(n_score)} ({score[i] / n_score:.1%})"
        for i in order
    )


def _example_ids(
    ids: np.ndarray[Any, Any],
    bin_of_row: np.ndarray[Any, Any],
    terms: np.ndarray[Any, Any],
    grew: np.ndarray[Any, Any],
    limit: int = EXAMPLE_ACCOUNTS,
) -> str:
    """A few ids of the scored rows in the bins whose share grew the most."""
    grown = [i for i in np.argsort(-terms, kind="stable") if grew[i]][:MOVED_BINS]
    picked: list[str] = []
    for i in grown:
        # the first ids in order: a heap of `limit`, not a sort of every row of the bin
        picked += heapq.nsmallest(limit - len(picked), ids[bin_of_row == i].tolist())
        if len(picked) >= limit:
            break
    return ", ".join(picked)


@dataclass
class Prepared:
    """The rows to score converted once for many references: numeric features as float64
    (and their known values sorted, for counts by edge), categorical ones as labels."""

    values: dict[str, np.ndarray[Any, Any]]
    ordered: dict[str, np.ndarray[Any, Any]]
    rows: int


def prepared(score: pd.DataFrame, numeric: list[str], categorical: list[str]) -> Prepared:
    """`score` as `stability_against` reads it (MISSING for a missing category)."""
    values = {f: _to_float(score[f]) for f in numeric if f in score.columns}
    ordered = {f: np.sort(x[~np.isnan(x)]) for f, x in values.items()}
    values |= {f: _category_labels(score[f]).to_numpy() for f in categorical if f in score}
    return Prepared(values, ordered, len(score))


def _counts_by_edges(ordered: np.ndarray[Any, Any], edges: np.ndarray[Any, Any], rows: int) -> Any:
    """Counts per right-closed bin of `edges` (the top bin open) and then the missing values,
    from the sorted known values."""
    at_or_below = np.searchsorted(ordered, edges, side="right")
    counts = np.diff(np.concatenate([[0], at_or_below, [len(ordered)]]))
    return np.append(counts, rows - len(ordered))


def _bin_of_row(
    column: np.ndarray[Any, Any], kind: str, labels: list[str], edges: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """Each scored row's bin (the same bins the counts use)."""
    if kind == "numeric":
        return np.where(np.isnan(column), len(edges) + 1, np.searchsorted(edges, column))
    codes = pd.Index(labels[:-1]).get_indexer(pd.Index(column)).astype(np.int64)
    return np.where(codes < 0, len(labels) - 1, codes)


def stability_against(
    ref: dict[str, Any],
    score: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    epsilon: float = 1e-4,
    *,
    quantile: float = CHANCE_QUANTILE,
    shift_days: dict[str, int] | None = None,
    ids: pd.Series | None = None,
    ready: Prepared | None = None,
) -> pd.DataFrame:
    """`population_stability` with the training side given as a `reference`.

    `shift_days` moves the reference's bins of a feature by that many (an age in days compared
    `shift_days` after the reference's date); `ids` (aligned with `score`) name example rows in
    the bins that grew; `ready` is `prepared(score, ...)` when the caller has it. The
    reference's `effective_rows`, when set, is the row count its chance level is computed with
    (a reference pooled over several dates of the same accounts holds fewer independent rows
    than it counts)."""
    records = []
    shifts = shift_days or {}
    ref_rows = int(ref.get("effective_rows") or ref["rows"])
    ready = ready if ready is not None else prepared(score, numeric, categorical)
    codes_of: dict[tuple[str, ...], np.ndarray[Any, Any]] = {}
    names = ids.astype(str).to_numpy() if ids is not None else None
    n_score = len(score)
    for feature, kind in [
        *((f, "numeric") for f in numeric),
        *((f, "categorical") for f in categorical),
    ]:
        entry = ref["features"].get(feature)
        record: dict[str, Any] = {
            "feature": feature,
            "kind": kind,
            "train_rows": ref["rows"],
            "score_rows": n_score,
            "shift_days": 0,
            "moved_bins": "",
            "example_accounts": "",
        }
        if entry is None or feature not in ready.values:
            record |= {"psi": np.nan, "top_shift_bin": "feature missing", "bins": 0}
            record |= {"train_missing_share": np.nan, "score_missing_share": np.nan}
            record |= {"chance_psi": np.nan, "psi_beyond_chance": np.nan}
            records.append(record)
            continue
        column = ready.values[feature]
        if kind == "numeric":
            shift = int(shifts.get(feature, 0))
            edges = np.asarray(entry["edges"], dtype=float) + shift
            labels = numeric_labels(edges)
            counts = _counts_by_edges(ready.ordered[feature], edges, n_score).astype(float)
            record["shift_days"] = shift
        else:
            labels = [*entry["categories"], MISSING, UNSEEN]
            edges = np.array([])
            key = (feature, *labels)
            if key not in codes_of:
                codes = pd.Index(labels[:-1]).get_indexer(pd.Index(column)).astype(np.int64)
                codes_of[key] = np.where(codes < 0, len(labels) - 1, codes)  # unseen: last bin
            counts = np.bincount(codes_of[key], minlength=len(labels)).astype(float)
        train = np.asarray(entry["train"], dtype=float)
        terms, grew = _terms(train, counts, epsilon)
        psi = float(terms.sum())
        occupied = int(((train > 0) | (counts > 0)).sum())
        chance = chance_psi(ref_rows, n_score, occupied, quantile)
        beyond = psi > chance
        record |= {
            "psi": psi,
            "bins": len(labels),
            "train_missing_share": (
                entry["missing_share"] if entry["missing_share"] is not None else np.nan
            ),
            "score_missing_share": float(counts[-2 if kind == "categorical" else -1] / n_score)
            if n_score
            else np.nan,
            "top_shift_bin": labels[int(np.argmax(terms))],
            "chance_psi": chance,
            "psi_beyond_chance": psi if beyond else 0.0,
            "moved_bins": _moved(labels, train, counts, terms),
            "example_accounts": (
                _example_ids(names, _bin_of_row(column, kind, labels, edges), terms, grew)
                if beyond and names is not None
                else ""
            ),
        }
        records.append(record)
    return pd.DataFrame.from_records(records, columns=PSI_COLUMNS)


def days_between(start: Any, end: Any) -> int:
    return int((pd.Timestamp(end) - pd.Timestamp(start)) / pd.Timedelta(days=1))


def calendar_features(
    frame: pd.DataFrame,
    numeric: list[str],
    date_column: str = "snapshot_date",
    id_column: str = "account_id",
    *,
    min_share: float = 0.5,
) -> dict[str, dict[str, Any]]:
    """Which numeric features move with the calendar by construction, measured on training
    snapshots: a day count that, for the same account, grew by exactly the days between two
    snapshot dates for at least `min_share` of the accounts (ages, tenures, days since
    something), AND whose distribution at the latest date matches the earlier date's moved by
    those days better than the earlier date's as it was (so a "days since" feature that
    restarts often, whose distribution stays put, is left alone).

    Compares the latest date with the earliest one at least a quarter of the dates back (the
    scoring date is typically months after the last training date). Returns, per such
    feature, the measurement: {share, days, psi_as_is, psi_moved}."""
    if frame.empty or date_column not in frame or id_column not in frame:
        return {}
    dates = sorted(pd.to_datetime(frame[date_column]).unique())
    if len(dates) < 2:
        return {}
    last = dates[-1]
    first = dates[max(0, len(dates) - 1 - max(1, len(dates) // 4))]
    gap = days_between(first, last)
    when = pd.to_datetime(frame[date_column])
    before, after = frame.loc[when == first], frame.loc[when == last]
    pairs = before.merge(after, on=id_column, suffixes=("_a", "_b"))
    found: dict[str, dict[str, Any]] = {}
    for feature in numeric:
        if feature not in frame.columns:
            continue
        a = _to_float(pairs[f"{feature}_a"]) if len(pairs) else np.array([])
        b = _to_float(pairs[f"{feature}_b"]) if len(pairs) else np.array([])
        known = ~np.isnan(a) & ~np.isnan(b)
        if known.sum() < 10:
            continue
        share = float(np.mean(b[known] - a[known] == gap))
        if share < min_share:
            continue
        edges = numeric_edges(before[feature])
        counts = numeric_counts(before[feature], edges).tolist()
        ref = {
            "rows": len(before),
            "features": {
                feature: {"edges": edges.tolist(), "train": counts, "missing_share": None}
            },
        }
        as_is, moved = (
            float(stability_against(ref, after, [feature], [], shift_days={feature: s})["psi"][0])
            for s in (0, gap)
        )
        if moved < as_is:
            found[feature] = {"share": share, "days": gap, "psi_as_is": as_is, "psi_moved": moved}
    return found
