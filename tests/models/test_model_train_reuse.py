"""Work shared between the targets of a split (binning, baseline inputs) and the row cap:
the same fits as doing it per target, and a sample that is stable and ignores the labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from models.backtest import run_backtest
from models.baselines import Baselines, _logistic_input, best_single_rule, fit_logistic_baseline
from models.booster import LocalRefit, refit_local
from models.features import label_array, prepare_features, training_frame
from models.params import Params
from models.splits import fit_sample
from models.train import train_model


def _with_lightgbm(params: Params, **update: object) -> Params:
    return params.model_copy(update={"lightgbm": params.lightgbm.model_copy(update=update)})


@pytest.fixture(scope="module")
def frame(snapshots: pd.DataFrame, params: Params) -> pd.DataFrame:
    return training_frame(snapshots, params)


def test_binning_once_per_split_gives_refit_locals_boosters(
    frame: pd.DataFrame, params: Params
) -> None:
    X, _ = prepare_features(frame, params)
    booster_params = params.lightgbm.booster_params()
    categorical = list(params.features.categorical)
    shared = LocalRefit()
    for label in params.label_columns:  # one Dataset, three labels
        y = label_array(frame, label)
        mine = shared(booster_params, X, y, categorical, 30)
        fresh = refit_local(booster_params, X, y, categorical, 30)
        assert mine.model_to_string() == fresh.model_to_string()
    other = X.iloc[: len(X) // 2]  # another matrix is binned anew, not given stale rows
    y = label_array(frame.iloc[: len(X) // 2], params.label_columns[0])
    assert (
        shared(booster_params, other, y, categorical, 30).model_to_string()
        == refit_local(booster_params, other, y, categorical, 30).model_to_string()
    )


def test_shared_baselines_fit_what_the_per_target_ones_fit(
    frame: pd.DataFrame, params: Params
) -> None:
    last = frame["snapshot_date"].max()
    fit, test = frame[frame["snapshot_date"] < last], frame[frame["snapshot_date"] == last]
    X_fit, categories = prepare_features(fit, params)
    X_test, _ = prepare_features(test, params, categories)
    shared = Baselines(X_fit, X_test, params)
    for label in params.label_columns:
        y = label_array(fit, label)
        alone = fit_logistic_baseline(X_fit, y, params)
        expected = alone.predict_proba(_logistic_input(X_test, params))[:, 1]
        np.testing.assert_allclose(shared.logistic(y), expected, rtol=0, atol=1e-12)
        assert shared.single_rule(y) == best_single_rule(X_fit, y, params)


def test_fit_sample_is_all_rows_up_to_the_cap(frame: pd.DataFrame) -> None:
    assert fit_sample(frame, None).all()
    assert fit_sample(frame, len(frame)).all()


def test_fit_sample_is_stable_sized_and_blind_to_labels(frame: pd.DataFrame) -> None:
    cap = len(frame) // 4
    keep = fit_sample(frame, cap)
    assert abs(int(keep.sum()) - cap) < 0.25 * cap  # a hash sample of about `cap` rows
    assert 0 < keep.sum() < len(frame)
    # the same (account, date) rows in any row order, whatever the labels say
    shuffled = frame.sample(frac=1.0, random_state=5)
    for label in ("label_expansion", "label_upsell"):
        shuffled[label] = ~shuffled[label]
    again = pd.Series(fit_sample(shuffled, cap), index=shuffled.index)
    np.testing.assert_array_equal(again.sort_index().to_numpy(), keep)
    # every snapshot date keeps some rows: the sample is by row, not by date
    assert frame.loc[keep, "snapshot_date"].nunique() == frame["snapshot_date"].nunique()


def test_capped_training_learns_from_the_sample_and_validates_on_every_row(
    snapshots: pd.DataFrame, frame: pd.DataFrame, params: Params
) -> None:
    full = train_model(snapshots, params, backtest=False)
    cap = len(frame) // 2
    capped = train_model(snapshots, _with_lightgbm(params, max_fit_rows=cap), backtest=False)
    assert capped.n_rows == int(fit_sample(frame, cap).sum()) < full.n_rows
    assert capped.n_validation_rows == full.n_validation_rows  # never sampled
    assert capped.n_train_rows < full.n_train_rows
    records, predictions = run_backtest(frame, _with_lightgbm(params, max_fit_rows=cap))
    lightgbm = [r for r in records if r["model"] == "lightgbm"]
    assert lightgbm and all("lightgbm.max_fit_rows" in r["detail"] for r in lightgbm)
    # test rows are never sampled either: every test row has a prediction
    _, all_rows = run_backtest(frame, params)
    assert len(predictions) == len(all_rows)


def test_max_fit_rows_must_be_positive(params: Params) -> None:
    with pytest.raises(ValidationError, match="max_fit_rows"):
        Params.model_validate(
            {
                **params.model_dump(mode="json"),
                "lightgbm": {**params.lightgbm.model_dump(mode="json"), "max_fit_rows": 0},
            }
        )
