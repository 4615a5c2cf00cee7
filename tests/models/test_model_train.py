"""Time-ordered backtest, determinism, calibration and baselines."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.backtest import run_backtest
from models.booster import fit_booster
from models.calibration import Calibrator, fit_calibrator
from models.evaluate import expected_calibration_error
from models.features import InsufficientLabelsError, prepare_features, training_frame
from models.params import Params, load_params
from models.score import score_accounts
from models.splits import backtest_splits, final_split
from models.train import TrainedModel, train_model

H = pd.Timedelta(days=90)


def _month_ends(n: int) -> list[pd.Timestamp]:
    return list(pd.date_range(end="2025-12-31", periods=n, freq="ME"))


def test_backtest_splits_are_time_ordered_and_leak_free(params: Params) -> None:
    dates = _month_ends(18)
    splits = backtest_splits(dates, params)
    assert [s.test_date for s in splits] == dates[-3:]
    for split in splits:
        assert split.test_date is not None
        assert len(split.validation_dates) == params.backtest.validation_dates
        # every training label window ends before the validation window begins
        assert max(split.train_dates) + H <= min(split.validation_dates)
        # every validation label window ends by the test snapshot date
        assert max(split.validation_dates) + H <= split.test_date
        assert not set(split.train_dates) & set(split.validation_dates)


def test_backtest_skips_cutoffs_without_history(params: Params) -> None:
    assert backtest_splits(_month_ends(5), params) == []
    assert len(backtest_splits(_month_ends(8), params)) == 1
    assert len(backtest_splits(_month_ends(9), params)) == 2


def test_final_split_validates_on_latest_dates(params: Params) -> None:
    dates = _month_ends(12)
    split = final_split(dates, params)
    assert split.validation_dates == (dates[-1],)
    assert split.test_date is None
    assert max(split.train_dates) + H <= dates[-1]
    with pytest.raises(ValueError, match="not enough snapshot dates"):
        final_split(dates[:3], params)


def test_backtest_rows_respect_the_scheme(trained: TrainedModel) -> None:
    records = trained.metrics_frame()
    assert set(records["model"]) == {"lightgbm", "lightgbm_uncalibrated", "logistic", "single_rule"}
    assert set(records["target"]) == {"expansion", "upsell", "cross_sell"}
    assert records["cutoff"].nunique() == 3
    for _, r in records.iterrows():
        assert pd.Timestamp(r["train_end"]) + H <= pd.Timestamp(r["validation_start"])
        assert pd.Timestamp(r["validation_end"]) + H <= pd.Timestamp(r["cutoff"])
        assert r["n"] == 30


def test_final_model_metadata(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params
) -> None:
    complete = snapshots[snapshots["is_label_complete"]]
    last_complete = pd.Timestamp(complete["snapshot_date"].max()).date()
    assert trained.training_window_end == last_complete
    assert trained.validation_start == last_complete
    # refit: the final boosters learn from every complete row (train, gap and validation)
    assert params.lightgbm.refit
    assert trained.n_rows == len(training_frame(snapshots, params))
    assert trained.n_rows > trained.n_train_rows + trained.n_validation_rows
    assert set(trained.boosters) == {"expansion", "upsell", "cross_sell"}
    # offers come from the catalogue (dbt: account_offers): no offer values are learned
    assert trained.offer_values is None and math.isnan(trained.expansion_mrr_ratio)
    preds = trained.backtest_predictions
    assert preds is not None
    assert list(preds.columns) == ["cutoff", "target", "model", "account_id", "y", "p"]
    assert set(preds["cutoff"]) == {r["cutoff"] for r in trained.metrics}


def test_training_is_deterministic_and_row_order_free(
    snapshots: pd.DataFrame, params: Params, as_of: date
) -> None:
    threads = load_params().lightgbm.num_threads  # the production thread count
    params = params.model_copy(
        update={"lightgbm": params.lightgbm.model_copy(update={"num_threads": threads})}
    )
    shuffled = snapshots.sample(frac=1.0, random_state=7)
    a = train_model(snapshots, params, backtest=False)
    b = train_model(shuffled, params, backtest=False)
    rows = snapshots[pd.to_datetime(snapshots["snapshot_date"]) == pd.Timestamp(as_of)]
    X, _ = prepare_features(rows, params, a.categories)
    pa, pb = a.predict_proba(X), b.predict_proba(X)
    assert np.array_equal(pa.to_numpy(), pb.to_numpy())
    for t in a.boosters:
        assert a.boosters[t].model_to_string() == b.boosters[t].model_to_string()


def test_calibration_matches_planted_rates(
    make_snapshots: Callable[..., pd.DataFrame],
    true_probabilities: Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray]],
    params: Params,
) -> None:
    p = params.model_copy(
        update={"backtest": params.backtest.model_copy(update={"validation_dates": 2})}
    )
    model = train_model(make_snapshots(n_accounts=200, n_months=14, seed=3), p, backtest=False)
    fresh = make_snapshots(n_accounts=3000, n_months=1, seed=9, as_of=date(2026, 6, 30))
    fresh = fresh[fresh["is_label_complete"]]
    X, _ = prepare_features(fresh, p, model.categories)
    calibrated = model.predict_proba(X)["p_upsell"].to_numpy()
    uncalibrated = 1 / (1 + np.exp(-model.raw_scores(X, "upsell")))
    planted, _ = true_probabilities(fresh)
    y = fresh["label_upsell"].astype(bool).to_numpy()
    assert abs(calibrated.mean() - planted.mean()) < 0.02
    assert np.abs(calibrated - planted).mean() < 0.07
    assert expected_calibration_error(y, calibrated) < 0.05
    assert expected_calibration_error(y, uncalibrated) < 0.07  # no class weighting by default

    # class weighting (is_unbalance) inflates raw probabilities; calibration undoes it. Early
    # stopping on AUC, which the weighting does not penalise: on log loss it stops the weighted
    # fit after a round or two, before the raw scores move far from the base rate.
    weighted_params = p.model_copy(
        update={
            "lightgbm": p.lightgbm.model_copy(
                update={"imbalance": "is_unbalance", "early_stopping_metric": "auc"}
            )
        }
    )
    weighted = train_model(
        make_snapshots(n_accounts=200, n_months=14, seed=3), weighted_params, backtest=False
    )
    w_calibrated = weighted.predict_proba(X)["p_upsell"].to_numpy()
    w_raw = 1 / (1 + np.exp(-weighted.raw_scores(X, "upsell")))
    assert expected_calibration_error(y, w_calibrated) < 0.05
    assert expected_calibration_error(y, w_raw) > 2 * expected_calibration_error(y, w_calibrated)


def test_calibrators() -> None:
    raw = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    y = np.array([0, 0, 1, 0, 1, 1])
    for method in ("sigmoid", "isotonic"):
        cal = fit_calibrator(raw, y, method)
        assert cal.method == method
        p = cal.predict(raw)
        assert ((p >= 0) & (p <= 1)).all()
        assert np.all(np.diff(p) >= -1e-12)  # monotone in the raw score
        assert np.array_equal(Calibrator.from_dict(cal.to_dict()).predict(raw), p)
    assert fit_calibrator(raw, np.zeros(6), "sigmoid").method == "identity"
    with pytest.raises(ValueError, match=r"calibration\.method"):
        fit_calibrator(raw, y, "beta")


def test_single_class_training_target_is_an_error(snapshots: pd.DataFrame, params: Params) -> None:
    X, _ = prepare_features(snapshots.head(20), params)
    y = np.zeros(20, dtype=np.int64)
    with pytest.raises(InsufficientLabelsError, match="upsell"):
        fit_booster(X, y, X, y, params, "upsell")


def test_training_frame_is_what_training_sees(snapshots: pd.DataFrame, params: Params) -> None:
    frame = training_frame(snapshots, params)
    assert frame["is_label_complete"].all()
    assert frame["snapshot_date"].max() + H <= pd.Timestamp("2026-02-15")


@pytest.mark.parametrize("validation_dates", [1, 2, 3])
def test_no_time_leakage_in_the_split(validation_dates: int, params: Params) -> None:
    """Train labels are known before validation starts, validation labels by the cut-off."""
    p = params.model_copy(
        update={
            "backtest": params.backtest.model_copy(update={"validation_dates": validation_dates})
        }
    )
    dates = _month_ends(18)
    splits = [*backtest_splits(dates, p), final_split(dates, p)]
    assert len(splits) == 4
    for split in splits:
        assert len(split.validation_dates) == validation_dates
        assert max(split.train_dates) + H <= min(split.validation_dates)
        assert list(split.train_dates) == sorted(split.train_dates)
        if split.test_date is not None:
            assert max(split.validation_dates) + H <= split.test_date


def test_backtest_never_sees_labels_unknown_at_the_cutoff(
    snapshots: pd.DataFrame, params: Params
) -> None:
    """Flipping every label not yet known at a cut-off (and scrambling those rows' features)
    leaves that cut-off's backtest predictions unchanged: LightGBM (refit included),
    calibration and baselines only use rows with snapshot_date + horizon <= cut-off."""
    params = params.model_copy(
        update={"backtest": params.backtest.model_copy(update={"n_cutoffs": 2})}
    )
    frame = training_frame(snapshots, params)
    frame = frame[frame["snapshot_date"] <= "2025-09-30"].reset_index(drop=True)
    _, before = run_backtest(frame, params)
    first = min(before["cutoff"])
    unknown = frame["snapshot_date"] + H > pd.Timestamp(first)
    assert unknown.sum() > 0 and (~unknown).sum() > 0
    changed = frame.copy()
    for label in params.label_columns:
        changed.loc[unknown, label] = ~changed.loc[unknown, label]
    rng = np.random.default_rng(0)
    future = changed.index[unknown & (changed["snapshot_date"] > pd.Timestamp(first))]
    for col in ("per_unit_limit_utilization", "opportunities_open", "days_to_renewal"):
        changed.loc[future, col] = rng.permutation(changed.loc[future, col].to_numpy())
    _, after = run_backtest(changed, params)
    at = before["cutoff"] == first
    pd.testing.assert_frame_equal(
        before[at].reset_index(drop=True),
        after[after["cutoff"] == first]
        .reset_index(drop=True)
        .assign(
            y=before[at]["y"].to_numpy()  # the test rows' own labels were flipped too
        ),
    )


def test_deterministic_retraining_gives_identical_scores(
    snapshots: pd.DataFrame, params: Params, as_of: date
) -> None:
    a = train_model(snapshots, params, backtest=False)
    b = train_model(snapshots.sample(frac=1.0, random_state=11), params, backtest=False)
    pd.testing.assert_frame_equal(
        score_accounts(a, snapshots, as_of, params), score_accounts(b, snapshots, as_of, params)
    )
