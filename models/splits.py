"""Time-ordered splits of the training frame, never random.

Split scheme (H = label_horizon_days; a snapshot's label covers (snapshot_date, +H]):

* test       = the rows of one cut-off snapshot date c (each of the last `n_cutoffs`
               snapshot dates with complete labels);
* validation = the last `validation_dates` snapshot dates v with v + H <= c: their labels
               are known at c. Used for early stopping and calibration;
* train      = every snapshot date s with s + H <= min(validation dates): train labels are
               known before the validation window begins.

So train precedes validation precedes test, and no label window reaches past the next
window's first snapshot date. The final model uses the same rule with the last complete
snapshot date(s) as validation and no test.

The rows known at a cut-off (snapshot_date + H <= c) are those the refit and the baselines learn
from. Past `lightgbm.max_fit_rows` of them (large data), a hash sample of (account_id,
snapshot_date) of about that many (`fit_sample`: the same rows in every split and run, whatever
their labels); validation and test rows are never sampled. `split_matrices` computes a split's
feature matrices once, for the three targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.arrays import BoolArray
from models.features import Categories, fit_categories, prepare_features, to_timestamp
from models.params import Params


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


def rows_at(frame: pd.DataFrame, dates: tuple[pd.Timestamp, ...]) -> pd.DataFrame:
    """The rows of `frame` on these snapshot dates."""
    return frame.loc[frame["snapshot_date"].isin(list(dates))]


def known_rows(frame: pd.DataFrame, end: pd.Timestamp, params: Params) -> pd.DataFrame:
    """Rows whose label window ends by `end` (snapshot_date + H <= end)."""
    horizon = pd.Timedelta(days=params.label_horizon_days)
    return frame.loc[frame["snapshot_date"] + horizon <= end]


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
class SplitMatrices:
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


def split_matrices(known: pd.DataFrame, split: Split, params: Params) -> SplitMatrices:
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
    return SplitMatrices(
        train=rows.loc[in_train & keep],
        val=rows.loc[in_val],
        known=rows.loc[keep],
        X_train=X.loc[in_train & keep],
        X_val=X.loc[in_val],
        X_known=X.loc[keep],
        categories=categories,
        n_known_all=len(known),
    )
