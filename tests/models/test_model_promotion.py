"""Champion / challenger: the challenger's bars, the champion's rows on the challenger's
cut-offs, and the promotion decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.params import Params
from models.promotion import champion_rows, decide_promotion, evaluate_on_date, predictions_on_date
from models.train import TrainedModel, train_model


def _lenient(params: Params) -> Params:
    """No absolute bars: a few hundred synthetic rows are no real model."""
    quality = params.quality.model_copy(update={"min_roc_auc": 0.0, "max_brier": 1.0})
    acceptance = params.acceptance.model_copy(
        update={"max_ece": 1.0, "must_beat_baseline": None, "resamples": 200}
    )
    return params.model_copy(update={"quality": quality, "acceptance": acceptance})


def test_predictions_on_date_refuse_leaky_dates(
    trained: TrainedModel, snapshots: pd.DataFrame
) -> None:
    with pytest.raises(ValueError, match="leak"):
        predictions_on_date(trained, snapshots, trained.training_window_end)


def test_an_older_model_is_judged_out_of_time(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params
) -> None:
    older = snapshots[pd.to_datetime(snapshots["snapshot_date"]) <= "2025-06-30"]
    old = train_model(older, params, backtest=False)
    records = evaluate_on_date(old, snapshots, "2025-10-31")
    assert {r["target"] for r in records} == {"expansion", "upsell", "cross_sell"}
    assert all(r["n"] == 30 for r in records)
    # it kept no backtest: its final model scores the challenger's cut-offs it cannot have
    # seen (its labels reach 2025-09-28: not 2025-08-31)
    mine = trained.backtest_predictions
    assert mine is not None and "2025-08-31" in set(mine["cutoff"])
    rows = champion_rows(trained, old, snapshots)
    assert set(rows["cutoff"]) == {"2025-09-30", "2025-10-31"}
    assert len(rows) == 2 * 30 * 3  # two dates, 30 accounts, three targets


def test_the_same_data_uses_the_stored_backtest(
    trained: TrainedModel, snapshots: pd.DataFrame
) -> None:
    rows = champion_rows(trained, trained, snapshots)
    preds = trained.backtest_predictions
    assert preds is not None
    pd.testing.assert_frame_equal(rows, preds.reset_index(drop=True))


def test_no_champion_the_bars_decide(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params
) -> None:
    decision = decide_promotion(trained, None, snapshots, _lenient(params))
    assert decision.promote and "no champion yet" in decision.reason
    assert decision.summary()["bars"] == decision.assessment.verdicts()
    strict = _lenient(params).model_copy(
        update={"quality": params.quality.model_copy(update={"min_roc_auc": 0.999})}
    )
    decision = decide_promotion(trained, None, snapshots, strict)
    assert not decision.promote and "fails the bars" in decision.reason
    assert decision.assessment.verdicts()["roc_auc"] == "failed"


def test_a_challenger_must_not_fall_short_of_the_champion(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params
) -> None:
    lenient = _lenient(params)
    same = decide_promotion(trained, trained, snapshots, lenient)
    # the champion's very predictions: short of champion + margin on every resample
    assert not same.promote and "does not beat champion" in same.reason
    assert same.assessment.verdicts()["champion"] == "failed"
    # no margin: as good is enough (not shown below the champion)
    even = lenient.model_copy(
        update={"quality": lenient.quality.model_copy(update={"promotion_margin": 0.0})}
    )
    decision = decide_promotion(trained, trained, snapshots, even)
    assert decision.promote and "not shown below champion" in decision.reason


def test_a_worse_challenger_keeps_the_champion(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params
) -> None:
    rng = np.random.default_rng(5)
    preds = trained.backtest_predictions
    assert preds is not None
    noisy = preds.assign(p=rng.uniform(0, 1, len(preds)))  # a challenger without signal
    challenger = TrainedModel(**{**trained.__dict__, "backtest_predictions": noisy})
    decision = decide_promotion(challenger, trained, snapshots, _lenient(params))
    assert not decision.promote, decision.reason
    assert decision.assessment.verdicts()["champion"] == "failed"
