"""Champion / challenger: the challenger's bars and, against a champion, the paired comparison
on the backtest rows both predicted. The bars are `models.acceptance.assess`, the same that
`make evaluate` and the model report show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.acceptance import Assessment, assess, champion_bar
from models.backtest import PREDICTION_COLUMNS
from models.evaluate import binary_metrics
from models.features import DateLike, label_array, prepare_features, to_timestamp, training_frame
from models.params import Params
from models.train import TrainedModel


def _test_rows(model: TrainedModel, snapshots: pd.DataFrame, test_date: DateLike) -> pd.DataFrame:
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
    return test


def predictions_on_date(
    model: TrainedModel, snapshots: pd.DataFrame, test_date: DateLike
) -> pd.DataFrame:
    """A trained model's calibrated probabilities on one complete snapshot date, as backtest
    rows (`PREDICTION_COLUMNS`, model "lightgbm").

    Refuses dates whose label window overlaps what the model was fitted on (test_date must be
    at least label_horizon_days after the model's last validation date).
    """
    test = _test_rows(model, snapshots, test_date)
    X, _ = prepare_features(test, model.params, model.categories)
    probs = model.predict_proba(X)
    cutoff = to_timestamp(test_date).date().isoformat()
    frames = [
        pd.DataFrame(
            {
                "cutoff": cutoff,
                "target": target,
                "model": "lightgbm",
                "account_id": test["account_id"].astype(str).to_numpy(),
                "y": label_array(test, label).astype(np.int8),
                "p": probs[f"p_{target}"].to_numpy(dtype=np.float64),
            }
        )
        for target, label in model.params.targets.items()
        if target in model.boosters
    ]
    return pd.concat(frames, ignore_index=True).loc[:, list(PREDICTION_COLUMNS)]


def evaluate_on_date(
    model: TrainedModel, snapshots: pd.DataFrame, test_date: DateLike
) -> list[dict[str, Any]]:
    """Metrics (`binary_metrics`) of a trained model on one complete snapshot date, one
    record per target; refuses leaky dates as `predictions_on_date` does."""
    rows = predictions_on_date(model, snapshots, test_date)
    return [
        {
            "cutoff": str(at["cutoff"].iloc[0]),
            "target": target,
            "model": "lightgbm",
            **binary_metrics(at["y"], at["p"]),
            "detail": f"final model {model.version or '(unsaved)'} evaluated out of time",
        }
        for target, at in rows.groupby("target", sort=False)
    ]


def champion_rows(
    challenger: TrainedModel, champion: TrainedModel, snapshots: pd.DataFrame
) -> pd.DataFrame:
    """The champion's predictions on the challenger's backtest cut-offs.

    For each cut-off of the challenger's backtest: the champion's own backtest rows of that
    cut-off (the same procedure's out-of-time predictions, e.g. a retrain on the same data);
    else its final model's, when the cut-off's labels are out of its reach (no leakage); else
    none. Empty when they share nothing.
    """
    mine = challenger.backtest_predictions
    if mine is None or mine.empty:
        return pd.DataFrame(columns=list(PREDICTION_COLUMNS))
    theirs = champion.backtest_predictions
    horizon = pd.Timedelta(days=champion.params.label_horizon_days)
    reach = pd.Timestamp(champion.training_window_end) + horizon
    frames = []
    for cutoff in sorted(mine["cutoff"].unique()):
        stored = theirs.loc[theirs["cutoff"] == cutoff] if theirs is not None else None
        if stored is not None and not stored.empty:
            frames.append(stored)
        elif pd.Timestamp(cutoff) >= reach:
            frames.append(predictions_on_date(champion, snapshots, cutoff))
    if not frames:
        return pd.DataFrame(columns=list(PREDICTION_COLUMNS))
    out: pd.DataFrame = pd.concat(frames, ignore_index=True).loc[:, list(PREDICTION_COLUMNS)]
    return out


def relabelled(rows: pd.DataFrame, snapshots: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The primary target's `rows` with the label the snapshots hold now, the truth both
    models are judged on (a label revised since a model's backtest counts as it is now); rows
    without a complete label are dropped."""
    target = params.primary_target
    frame = training_frame(snapshots, params)
    truth = pd.DataFrame(
        {
            "cutoff": frame["snapshot_date"].dt.strftime("%Y-%m-%d").to_numpy(),
            "account_id": frame["account_id"].astype(str).to_numpy(),
            "truth": label_array(frame, params.targets[target]).astype(np.int8),
        }
    )
    mine = rows.loc[rows["target"] == target].assign(
        account_id=lambda r: r["account_id"].astype(str), cutoff=lambda r: r["cutoff"].astype(str)
    )
    out = mine.merge(truth, on=["cutoff", "account_id"], how="inner")
    return out.assign(y=out.pop("truth")).loc[:, list(PREDICTION_COLUMNS)]


@dataclass(frozen=True)
class Decision:
    """Whether to promote the challenger, why, and its assessment (its bars, plus the champion
    bar when there is a champion)."""

    promote: bool
    reason: str
    assessment: Assessment

    def summary(self) -> dict[str, Any]:
        """The challenger's pooled figures (value and interval) and each bar's status."""
        a = self.assessment
        out: dict[str, Any] = {"cutoffs": list(a.cutoffs), "n": a.n, "n_pos": a.n_pos}
        for name in ("roc_auc", "brier", "ece", "lift_top_decile"):
            e = a.figures.get(name)
            if e is not None:
                out[name], out[f"{name}_low"], out[f"{name}_high"] = e.value, e.low, e.high
        out["bars"] = a.verdicts()
        return out


def decide_promotion(
    challenger: TrainedModel,
    champion: TrainedModel | None,
    snapshots: pd.DataFrame,
    params: Params,
) -> Decision:
    """Promote when no bar of the challenger fails (`models.acceptance.assess` on its backtest)
    and, against a champion, the evidence does not put its ROC AUC below the champion's +
    `quality.promotion_margin` on the rows both predicted (`champion_rows`), judged on the
    labels `snapshots` hold now (`relabelled`).

    `champion=None`: no champion yet (or one that can no longer score), the bars alone decide.
    """
    assessment = assess(challenger.backtest_predictions, params)
    headline = f"ROC AUC {assessment.figures['roc_auc'].format()}"
    if not assessment.passed:
        return Decision(
            False, "challenger fails the bars: " + "; ".join(assessment.failures), assessment
        )
    unsure = f"; not shown: {'; '.join(assessment.not_shown)}" if assessment.not_shown else ""
    if champion is None:
        return Decision(
            True, f"no champion yet; challenger passes the bars ({headline}{unsure})", assessment
        )
    theirs = champion_rows(challenger, champion, snapshots)
    mine = challenger.backtest_predictions
    assert mine is not None  # assess passed, so there were rows
    bar = champion_bar(
        relabelled(mine, snapshots, params), relabelled(theirs, snapshots, params), params
    )
    assessment = assessment.with_bar(bar)
    if bar.status == "failed":
        if theirs.empty:
            why = (
                f"challenger and champion {champion.version} share no backtest cut-off and the "
                "champion cannot be evaluated on the challenger's without leakage"
            )
        else:
            why = f"challenger does not beat champion {champion.version}: {bar.describe()}"
        return Decision(False, why, assessment)
    return Decision(
        True,
        f"challenger passes the bars ({headline}{unsure}) and is not shown below champion "
        f"{champion.version}: {bar.describe()}",
        assessment,
    )
