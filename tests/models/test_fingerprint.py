"""Fingerprints of DataFrames (models/fingerprint.py): stored values must not move."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.fingerprint import data_fingerprint, frame_fingerprint, rows_fingerprint

# Three rows, an index the fingerprints ignore.
FRAME = pd.DataFrame({"seats": [5, 12, 40], "mrr_usd": [250.0, np.nan, 1999.5]}, index=[7, 8, 9])


def test_frame_fingerprint() -> None:
    a = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    assert frame_fingerprint(a) == frame_fingerprint(a[["y", "x"]].copy())
    assert frame_fingerprint(a) != frame_fingerprint(a.assign(x=[1, 3]))
    assert len(frame_fingerprint(a)) == 64


def test_data_fingerprint_sees_column_order_names_and_types() -> None:
    fp = data_fingerprint(FRAME)
    assert len(fp) == 16
    assert data_fingerprint(FRAME.reset_index(drop=True)) == fp  # the index does not count
    assert data_fingerprint(FRAME[["mrr_usd", "seats"]]) != fp
    assert data_fingerprint(FRAME.rename(columns={"seats": "users"})) != fp
    assert data_fingerprint(FRAME.astype({"seats": "int32"})) != fp


def test_values_are_those_saved_models_and_training_keys_hold() -> None:
    """Computed by registry.frame_fingerprint and stages.data_fingerprint before they moved
    here: saved models' data_fingerprint and the training-cache keys depend on them."""
    assert frame_fingerprint(FRAME) == (
        "24d20d3dab69fc88a60818508d1579b6cba78a006b340f98d282ddfe85325edc"
    )
    assert data_fingerprint(FRAME) == "ed20c29705d3e665"


def test_rows_fingerprint_ignores_row_order_only() -> None:
    fp = rows_fingerprint(FRAME)
    assert len(fp) == 16
    assert rows_fingerprint(FRAME.iloc[[2, 0, 1]]) == fp  # same rows, another order
    assert rows_fingerprint(FRAME.iloc[[0, 1]]) != fp  # a row fewer
    assert rows_fingerprint(FRAME.assign(seats=[5, 12, 41])) != fp
    assert rows_fingerprint(FRAME[["mrr_usd", "seats"]]) != fp
    assert rows_fingerprint(FRAME.astype({"seats": "int32"})) != fp
    assert data_fingerprint(FRAME.iloc[[2, 0, 1]]) != data_fingerprint(FRAME)  # it keeps order


def test_the_training_key_is_the_same_for_shuffled_rows() -> None:
    """A query without ORDER BY may return the marts' rows in another order on a rerun (dbt
    rebuilds them without keeping insertion order): the training cache must still hit."""
    from flows.modelling.train import training_key
    from models.params import load_params

    rng = np.random.default_rng(3)
    rows = pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(8)],
            "snapshot_date": pd.to_datetime(["2026-01-31"] * 4 + ["2026-02-28"] * 4),
            "mrr": rng.normal(100, 10, 8),
        }
    )
    params = load_params()
    key = training_key(rows, params)
    shuffled = rows.sample(frac=1, random_state=5)
    assert not shuffled.index.equals(rows.index)
    assert training_key(shuffled, params) == key
    assert training_key(shuffled.reset_index(drop=True), params) == key
    assert training_key(rows.iloc[1:], params) != key
