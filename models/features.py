"""From `marts.account_features` rows (marts.account_snapshots plus the usage features) to the
model's feature matrix."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from models.derived import DERIVED_FEATURES
from models.params import Params

TABLE = "marts.account_features"
Categories = dict[str, list[str]]
DateLike = date | datetime | pd.Timestamp | str


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise a ValueError listing the `columns` missing from `frame`."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{TABLE} is missing {len(missing)} column(s) needed for {what}: "
            f"{', '.join(missing)} (see models/params.yaml)"
        )


def to_timestamp(value: DateLike) -> pd.Timestamp:
    """A date-like value as a midnight `pd.Timestamp`."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


def as_dates(series: pd.Series, column: str = "snapshot_date") -> pd.Series:
    """`series` as datetime64 at midnight; a clear error for values that are not dates."""
    try:
        out = pd.to_datetime(series)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{TABLE}.{column}: expected dates, got {exc}") from exc
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out.dt.normalize()


def as_float(series: pd.Series, column: str) -> pd.Series:
    """Numeric, boolean or nullable column as float64 with NaN for nulls."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.astype("Float64").astype("float64")
    values = series.astype(object).where(series.notna(), None)
    values = values.map(lambda v: float(v) if isinstance(v, bool | np.bool_) else v)
    try:
        return pd.to_numeric(values, errors="raise").astype("float64")
    except (TypeError, ValueError):
        numeric = pd.to_numeric(values, errors="coerce")
        bad = values[numeric.isna() & values.notna()].unique()[:3].tolist()
        raise ValueError(
            f"{TABLE}.{column}: expected numeric or boolean values, got e.g. {bad}"
        ) from None


def as_bool(series: pd.Series, column: str) -> pd.Series:
    """Boolean (possibly nullable/object) column as plain bool; nulls count as False."""
    floats = as_float(series, column)
    return floats.fillna(0.0).ne(0.0)


def derived_feature(snapshots: pd.DataFrame, name: str) -> pd.Series:
    """One derived feature of `snapshots` as float64 (index kept)."""
    spec = DERIVED_FEATURES[name]
    require_columns(snapshots, spec.sources, f"the derived feature {name}")
    columns = {c: as_float(snapshots[c], c) for c in spec.sources}
    out = pd.Series(spec.compute(columns), index=snapshots.index, dtype="float64")
    return out.where(np.isfinite(out))


def _as_text(series: pd.Series) -> pd.Series:
    """Values as `str`, nulls as None. str() runs once per distinct value, not per row."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    text = np.array([None, *(str(v) for v in uniques)], dtype=object)
    return pd.Series(text[codes + 1], index=series.index, dtype=object)


def fit_categories(frame: pd.DataFrame, params: Params) -> Categories:
    """Sorted distinct non-null values of each categorical feature in `frame`."""
    require_columns(frame, params.features.categorical, "categorical features")
    return {
        col: sorted({str(v) for v in frame[col].dropna().unique()})
        for col in params.features.categorical
    }


def prepare_features(
    snapshots: pd.DataFrame, params: Params, categories: Categories | None = None
) -> tuple[pd.DataFrame, Categories]:
    """Feature matrix (numeric float64, categorical `category`) and the categories used.

    Pass the training-time `categories` at scoring so values unseen in training become NaN.
    The index of `snapshots` is kept.
    """
    plain = [*params.features.numeric, *params.features.categorical]
    require_columns(snapshots, plain, "the model features")
    if categories is None:
        categories = fit_categories(snapshots, params)
    else:
        absent = [c for c in params.features.categorical if c not in categories]
        if absent:
            raise ValueError(f"categories from training lack categorical features: {absent}")
    columns: dict[str, pd.Series] = {}
    for col in params.features.numeric:
        columns[col] = as_float(snapshots[col], col)
    for col in params.features.derived:
        columns[col] = derived_feature(snapshots, col)
    for col in params.features.categorical:
        known = categories[col]
        text = _as_text(snapshots[col])
        text = text.where(text.isin(known), None)  # unseen in training -> NaN
        dtype = pd.CategoricalDtype(categories=pd.Index(known, dtype=object))
        columns[col] = pd.Series(pd.Categorical(text, dtype=dtype), index=snapshots.index)
    X = pd.DataFrame(columns, index=snapshots.index)
    return X, categories


def training_frame(snapshots: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Active rows with complete labels, sorted by (snapshot_date, account_id), fresh index.

    `snapshot_date` becomes datetime64 and label columns plain bool. Null labels on complete
    rows are an error.
    """
    needed = ["account_id", "snapshot_date", "is_active", "is_label_complete"]
    require_columns(snapshots, [*needed, *params.label_columns], "training")
    keep = as_bool(snapshots["is_label_complete"], "is_label_complete") & as_bool(
        snapshots["is_active"], "is_active"
    )
    frame = snapshots.loc[keep].copy()
    frame["snapshot_date"] = as_dates(frame["snapshot_date"])
    for col in params.label_columns:
        nulls = int(frame[col].isna().sum())
        if nulls:
            raise ValueError(
                f"{TABLE}.{col}: {nulls} null value(s) on active rows with is_label_complete; "
                "expected true/false"
            )
        frame[col] = as_bool(frame[col], col)
    frame = frame.sort_values(["snapshot_date", "account_id"], kind="mergesort")
    return frame.reset_index(drop=True)


def scoring_frame(snapshots: pd.DataFrame, as_of: DateLike) -> pd.DataFrame:
    """Active rows at `as_of`, one per account, sorted by account_id, fresh index."""
    require_columns(snapshots, ["account_id", "snapshot_date", "is_active"], "scoring")
    dates = as_dates(snapshots["snapshot_date"])
    day = to_timestamp(as_of)
    keep = (dates == day) & as_bool(snapshots["is_active"], "is_active")
    frame = snapshots.loc[keep].copy()
    if frame.empty:
        latest = dates.max()
        raise ValueError(
            f"{TABLE} has no active rows with snapshot_date == {day.date()} "
            f"(latest snapshot_date: {None if pd.isna(latest) else latest.date()})"
        )
    frame["snapshot_date"] = dates[keep]
    dupes = frame["account_id"][frame["account_id"].duplicated()].unique()[:5].tolist()
    if dupes:
        raise ValueError(
            f"{TABLE}: several rows per account at snapshot_date {day.date()}, e.g. {dupes}; "
            "expected one row per account_id"
        )
    frame = frame.sort_values("account_id", kind="mergesort")
    return frame.reset_index(drop=True)


def label_array(frame: pd.DataFrame, column: str) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Label column as a 0/1 integer array."""
    return as_bool(frame[column], column).to_numpy(dtype=np.int64)


class InsufficientLabelsError(ValueError):
    """A training set has only one class for a target."""
