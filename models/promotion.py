"""Champion / challenger: their metrics on one comparable window, and the promotion rule."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from models.evaluate import binary_metrics
from models.features import DateLike, label_array, prepare_features, to_timestamp, training_frame
from models.params import Params
from models.train import TrainedModel


def evaluate_on_date(
    model: TrainedModel, snapshots: pd.DataFrame, test_date: DateLike
) -> list[dict[str, Any]]:
    """Metrics of a trained model's calibrated probabilities on one complete snapshot date.

    Refuses dates whose label window overlaps what the model was fitted on (test_date must be
    at least label_horizon_days after the model's last validation date).
    """
    day = to_timestamp(test_date)
    horizon = pd.Timedelta(days=model.params.label_horizon_days)
    seen_until = pd.Timestamp(model.training_window_end) + horizon
    if day < seen_until:
        raise ValueError(
            f"model {model.version or '(unsaved)'} used labels up to {seen_until.date()}; "
            f"evaluating it on snapshot_date {day.date()} would leak"
        )
    frame = training_frame(snapshots, model.params)
    test = frame.loc[frame["snapshot_date"] == day]
    if test.empty:
        raise ValueError(f"no active rows with complete labels at snapshot_date {day.date()}")
    X, _ = prepare_features(test, model.params, model.categories)
    probs = model.predict_proba(X)
    records = []
    for target, label in model.params.targets.items():
        if target not in model.boosters:
            continue
        metrics = binary_metrics(label_array(test, label), probs[f"p_{target}"])
        records.append(
            {
                "cutoff": day.date().isoformat(),
                "target": target,
                "model": "lightgbm",
                **metrics,
                "detail": f"final model {model.version or '(unsaved)'} evaluated out of time",
            }
        )
    return records


def comparable_metrics(
    challenger: TrainedModel, champion: TrainedModel, snapshots: pd.DataFrame
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Challenger and champion metrics (primary target, calibrated LightGBM) on one window.

    The window is the challenger's latest cut-off c. The champion's number is, in order: its
    own stored backtest record for c (same data, e.g. a retrain); its final model evaluated on
    c when that does not leak; else both sides fall back to their latest common cut-off.
    """
    target = challenger.params.primary_target
    cutoff = challenger.latest_cutoff()
    if cutoff is None:
        raise ValueError("the challenger has no backtest metrics; train with backtest=True")
    mine = challenger.metrics_at(cutoff, target)
    assert mine is not None
    stored = champion.metrics_at(cutoff, target)
    if stored is not None:
        return mine, stored
    horizon = pd.Timedelta(days=champion.params.label_horizon_days)
    if pd.Timestamp(cutoff) >= pd.Timestamp(champion.training_window_end) + horizon:
        fresh = [r for r in evaluate_on_date(champion, snapshots, cutoff) if r["target"] == target]
        return mine, fresh[0]
    common = sorted(
        {str(r["cutoff"]) for r in challenger.metrics}
        & {str(r["cutoff"]) for r in champion.metrics}
    )
    for day in reversed(common):
        a, b = challenger.metrics_at(day, target), champion.metrics_at(day, target)
        if a is not None and b is not None:
            return a, b
    raise ValueError(
        f"challenger (latest cut-off {cutoff}) and champion {champion.version} share no "
        "backtest window and the champion cannot be evaluated on it without leakage"
    )


def _metric(metrics: dict[str, Any], name: str) -> float:
    value = metrics.get(name)
    return math.nan if value is None else float(value)


def should_promote(
    challenger_metrics: dict[str, Any],
    champion_metrics: dict[str, Any] | None,
    params: Params,
) -> tuple[bool, str]:
    """Promote when the challenger passes the quality bars and beats the champion by the margin.

    Metrics are backtest records (primary target, calibrated LightGBM) on the same cut-off,
    e.g. from `comparable_metrics`; `champion_metrics=None` means no champion yet.
    """
    q = params.quality
    auc, brier = _metric(challenger_metrics, "roc_auc"), _metric(challenger_metrics, "brier")
    if not auc >= q.min_roc_auc:
        return False, f"challenger roc_auc {auc:.4f} below the bar {q.min_roc_auc}"
    if not brier <= q.max_brier:
        return False, f"challenger brier {brier:.4f} above the bar {q.max_brier}"
    if champion_metrics is None:
        return True, f"no champion yet; challenger passes the bars (roc_auc {auc:.4f})"
    if challenger_metrics.get("cutoff") != champion_metrics.get("cutoff"):
        return False, (
            f"metrics are on different windows (challenger {challenger_metrics.get('cutoff')}, "
            f"champion {champion_metrics.get('cutoff')}); compare on the same cut-off"
        )
    name = q.promotion_metric
    mine, theirs = _metric(challenger_metrics, name), _metric(champion_metrics, name)
    if math.isnan(theirs):
        return True, f"champion {name} undefined on {challenger_metrics.get('cutoff')}"
    if mine >= theirs + q.promotion_margin:
        return True, f"challenger {name} {mine:.4f} >= champion {theirs:.4f} + {q.promotion_margin}"
    return False, f"challenger {name} {mine:.4f} < champion {theirs:.4f} + {q.promotion_margin}"
