"""Feature preparation and the training / scoring row filters."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.features import (
    as_float,
    prepare_features,
    scoring_frame,
    training_frame,
)
from models.params import Params


def _rows(snapshots: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    return snapshots.head(n).copy()


def test_missing_feature_columns_are_named(snapshots: pd.DataFrame, params: Params) -> None:
    frame = _rows(snapshots).drop(columns=["per_unit_limit_utilization", "segment"])
    with pytest.raises(
        ValueError, match=r"marts\.account_features .*per_unit_limit_utilization, segment"
    ):
        prepare_features(frame, params)
    usage = _rows(snapshots).drop(columns=["widget_gb__latest"])
    with pytest.raises(ValueError, match="widget_gb__latest"):
        prepare_features(usage, params)


def test_columns_order_dtypes_and_index(snapshots: pd.DataFrame, params: Params) -> None:
    frame = _rows(snapshots).set_index(pd.Index([10, 11, 12, 13, 14]))
    X, categories = prepare_features(frame, params)
    assert list(X.columns) == params.features.all
    assert list(X.index) == [10, 11, 12, 13, 14]
    assert all(X[c].dtype == np.float64 for c in params.features.numeric)
    assert all(isinstance(X[c].dtype, pd.CategoricalDtype) for c in params.features.categorical)
    assert set(categories) == set(params.features.categorical)
    assert "label_expansion" not in X.columns


def test_nullable_and_object_columns_become_float() -> None:
    cases = {
        "ints": pd.array([1, None, 3], dtype="Int64"),
        "bools": pd.array([True, None, False], dtype="boolean"),
        "object_bools": pd.Series([True, None, False], dtype=object),
        "object_numbers": pd.Series(["1.5", None, 3], dtype=object),
    }
    for name, values in cases.items():
        out = as_float(pd.Series(values), name)
        assert out.dtype == np.float64
        assert np.isnan(out.iloc[1]), name
    assert as_float(pd.Series(cases["bools"]), "b").tolist()[0] == 1.0


def test_non_numeric_value_names_the_column() -> None:
    with pytest.raises(ValueError, match=r"tenure_days.*'lots'"):
        as_float(pd.Series(["12", "lots"], dtype=object), "tenure_days")


def test_categories_fixed_at_training_unseen_become_nan(
    snapshots: pd.DataFrame, params: Params
) -> None:
    train = _rows(snapshots, 3).assign(segment=["smb", "enterprise", "smb"])
    _, categories = prepare_features(train, params)
    assert categories["segment"] == ["enterprise", "smb"]
    score = _rows(snapshots, 3).assign(segment=["smb", "galactic", None])
    X, same = prepare_features(score, params, categories)
    assert same is categories
    assert list(X["segment"].cat.categories) == ["enterprise", "smb"]
    assert X["segment"].iloc[0] == "smb"
    assert X["segment"].isna().tolist() == [False, True, True]


def test_training_frame_keeps_active_complete_rows_sorted(params: Params) -> None:
    frame = pd.DataFrame(
        {
            "account_id": ["B", "A", "C", "A"],
            "snapshot_date": [
                date(2025, 2, 28),
                date(2025, 2, 28),
                date(2025, 1, 31),
                date(2025, 1, 31),
            ],
            "is_active": pd.array([True, True, False, True], dtype="boolean"),
            "is_label_complete": [True, True, True, None],
            "label_expansion": [True, False, False, None],
            "label_upsell": [True, False, False, None],
            "label_cross_sell": [False, False, False, None],
        }
    )
    out = training_frame(frame, params)
    assert out["account_id"].tolist() == ["A", "B"]
    assert out["label_expansion"].tolist() == [False, True]
    assert out["snapshot_date"].dtype.kind == "M"


def test_training_frame_rejects_null_label_on_complete_row(params: Params) -> None:
    frame = pd.DataFrame(
        {
            "account_id": ["A"],
            "snapshot_date": [date(2025, 1, 31)],
            "is_active": [True],
            "is_label_complete": [True],
            "label_expansion": [None],
            "label_upsell": [False],
            "label_cross_sell": [False],
        }
    )
    with pytest.raises(ValueError, match="label_expansion"):
        training_frame(frame, params)


def test_scoring_frame_filters_as_of_and_active() -> None:
    frame = pd.DataFrame(
        {
            "account_id": ["B", "A", "C", "A"],
            "snapshot_date": ["2026-02-15", "2026-02-15", "2026-02-15", "2026-01-31"],
            "is_active": [True, True, False, True],
        }
    )
    for as_of in (date(2026, 2, 15), "2026-02-15", pd.Timestamp("2026-02-15")):
        assert scoring_frame(frame, as_of)["account_id"].tolist() == ["A", "B"]
    with pytest.raises(
        ValueError, match=r"snapshot_date == 2026-03-01.*latest snapshot_date: 2026-02-15"
    ):
        scoring_frame(frame, "2026-03-01")


def test_scoring_frame_rejects_two_rows_per_account() -> None:
    frame = pd.DataFrame(
        {"account_id": ["A", "A"], "snapshot_date": ["2026-02-15"] * 2, "is_active": [True, True]}
    )
    with pytest.raises(ValueError, match="one row per account_id"):
        scoring_frame(frame, "2026-02-15")


def test_derived_features_are_row_wise_and_documented(
    snapshots: pd.DataFrame, params: Params
) -> None:
    from models.derived import DERIVED_FEATURES
    from models.features import derived_feature
    from models.params import LEAKY_COLUMNS

    frame = _rows(snapshots, 6)
    derived = params.model_copy(
        update={"features": params.features.model_copy(update={"derived": list(DERIVED_FEATURES)})}
    )
    X, _ = prepare_features(frame, derived)
    assert list(X.columns) == derived.features.all
    for name, spec in DERIVED_FEATURES.items():
        assert not set(spec.sources) & LEAKY_COLUMNS, name  # never computed from labels
        assert name in params.reasons, f"{name} needs a reason phrase"
        assert X[name].dtype == np.float64
        # row-wise: the value of a row does not depend on the other rows
        alone = derived_feature(frame.iloc[[2]], name)
        assert np.array_equal(alone.to_numpy(), X[name].iloc[[2]].to_numpy(), equal_nan=True)
    assert np.allclose(X["mrr_per_unit"], frame["mrr_usd"] / frame["core_quantity"])
    zero = frame.assign(core_quantity=0)
    assert derived_feature(zero, "mrr_per_unit").isna().all()  # no division by zero
