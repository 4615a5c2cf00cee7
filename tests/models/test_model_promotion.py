"""Champion / challenger: metrics on one comparable window and the promotion rule."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from models.params import Params
from models.promotion import comparable_metrics, evaluate_on_date, should_promote
from models.train import TrainedModel, train_model


def test_evaluate_on_date_refuses_leaky_dates(
    trained: TrainedModel, snapshots: pd.DataFrame
) -> None:
    with pytest.raises(ValueError, match="leak"):
        evaluate_on_date(trained, snapshots, trained.training_window_end)


def test_evaluate_on_date_out_of_time(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params
) -> None:
    older = snapshots[pd.to_datetime(snapshots["snapshot_date"]) <= "2025-06-30"]
    old = train_model(older, params, backtest=False)
    records = evaluate_on_date(old, snapshots, "2025-10-31")
    assert {r["target"] for r in records} == {"expansion", "upsell", "cross_sell"}
    assert all(r["n"] == 30 for r in records)
    challenger, champion = comparable_metrics(trained, old, snapshots)
    assert challenger["cutoff"] == champion["cutoff"] == "2025-10-31"


def test_comparable_metrics_same_data_uses_stored_backtest(
    trained: TrainedModel, snapshots: pd.DataFrame
) -> None:
    challenger, champion = comparable_metrics(trained, trained, snapshots)
    assert challenger == champion
    assert challenger["model"] == "lightgbm" and challenger["target"] == "expansion"


def _m(cutoff: str, auc: float, brier: float = 0.1) -> dict[str, object]:
    return {"cutoff": cutoff, "roc_auc": auc, "brier": brier}


def test_should_promote(params: Params) -> None:
    ok, why = should_promote(_m("2025-10-31", 0.80), None, params)
    assert ok and "no champion" in why
    assert not should_promote(_m("2025-10-31", 0.55), None, params)[0]  # below min_roc_auc
    assert not should_promote(_m("2025-10-31", 0.80, brier=0.4), None, params)[0]
    assert not should_promote(_m("2025-10-31", math.nan), None, params)[0]
    champion = _m("2025-10-31", 0.78)
    assert should_promote(_m("2025-10-31", 0.79), champion, params)[0]
    ok, why = should_promote(_m("2025-10-31", 0.782), champion, params)
    assert not ok and "0.7820 < champion 0.7800 + 0.005" in why
    ok, why = should_promote(_m("2025-10-31", 0.90), _m("2025-09-30", 0.70), params)
    assert not ok and "different windows" in why
