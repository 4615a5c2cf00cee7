"""One evaluation of a model: its backtest test rows pooled over the cut-offs, each figure with
a bootstrap confidence interval, and the bars it is judged on.

The pipeline's promotion (`models.promotion`), `make evaluate` (scripts/evaluate.py) and the
model report (`models.report`) all call `assess`, so they agree on the same model.

Figures, on the primary target's calibrated LightGBM test rows of every backtest cut-off
(`TrainedModel.backtest_predictions`):

- ROC AUC over every (expander, non-expander) pair of the same cut-off: each cut-off ranks its
  own accounts, as the action list does (the per-cut-off ROC AUCs averaged with weights
  n_pos x n_neg);
- Brier score and ECE (`acceptance.ece_bins` equal-width bins) over all rows;
- top-decile lift: the expander rate among each cut-off's top 10% of scores over the base rate;
- the baseline's ROC AUC (logistic, `acceptance.must_beat_baseline`) on the same rows and, given
  an oracle (the demo generator's true probabilities), the oracle's.

Confidence intervals: `acceptance.resamples` bootstrap resamples of the rows, drawn within each
cut-off (each keeps its size), seeded (`acceptance.seed`: the same rows give the same
intervals), percentile intervals at `acceptance.confidence`. ECE is biased upward on few rows
(noise alone makes a bin miss: a calibrated model scores ECE ~0.1 on 90 rows, ~0.02 on 1,500)
and its resamples more so, so its interval is the basic bootstrap one, which carries the bias
back (`bootstrap`). Differences are paired: both sides on the same resampled rows (model -
baseline, model - ratio x oracle, challenger - champion).

A bar is *failed* only when its whole interval lies on the wrong side of it, *met* when the
whole interval lies on the right side, and *not shown* otherwise: the point estimate may be on
either side, the rows cannot tell, and the bar passes. A figure that cannot be computed (no
rows, one class only) fails its bar.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from models.arrays import FloatArray
from models.evaluate import oracle_on_rows
from models.params import Params

Status = Literal["met", "not shown", "failed"]
MODEL = "lightgbm"
ORACLE_COLUMN = "p_expansion_90d"  # the demo oracle's probability (expansion_oracle.parquet)
# Resample weights are drawn in batches of at most this many cells (resamples x rows).
BATCH_CELLS = 4_000_000
NAN = math.nan

Weights = np.ndarray[Any, np.dtype[np.float64]]  # (resamples, rows): times each row is drawn


@dataclass(frozen=True)
class Estimate:
    """A figure and its confidence interval [low, high]."""

    value: float
    low: float
    high: float

    def format(self, spec: str = ".3f", sign: bool = False) -> str:
        """'0.799 [0.772, 0.824]' ('+0.021 [...]' with sign)."""
        if math.isnan(self.value):
            return "n/a"
        fmt = ("+" if sign else "") + spec
        return f"{self.value:{fmt}} [{self.low:{fmt}}, {self.high:{fmt}}]"

    def as_dict(self) -> dict[str, float | None]:
        return {
            k: _finite(v)
            for k, v in (("value", self.value), ("low", self.low), ("high", self.high))
        }


@dataclass(frozen=True)
class Bar:
    """One bar: `figure` (an estimate with its interval) against `threshold`."""

    name: str  # roc_auc | brier | calibration | baseline | oracle | champion
    rule: str  # what the bar asks, e.g. "ROC AUC >= 0.60"
    figure: Estimate
    threshold: float
    higher_is_better: bool
    detail: str = ""  # the figures behind a difference, e.g. the two ROC AUCs
    spec: str = ".3f"
    strict: bool = False  # the figure must exceed the threshold (not merely reach it)

    @property
    def status(self) -> Status:
        f, t = self.figure, self.threshold
        if any(math.isnan(v) for v in (f.value, f.low, f.high)):
            return "failed"
        if self.higher_is_better:
            if f.low > t or (f.low == t and not self.strict):
                return "met"
            return "failed" if f.high < t else "not shown"
        if f.high < t or (f.high == t and not self.strict):
            return "met"
        return "failed" if f.low > t else "not shown"

    @property
    def passed(self) -> bool:
        return self.status != "failed"

    def statement(self) -> str:
        """'ROC AUC >= 0.6: 0.799 [0.772, 0.824]' (differences signed, with their detail)."""
        sign = self.name in {"baseline", "oracle", "champion"}
        text = f"{self.rule}: {self.figure.format(self.spec, sign=sign)}"
        return f"{text} ({self.detail})" if self.detail else text

    def describe(self) -> str:
        """The statement and the status: 'ROC AUC >= 0.6: 0.799 [0.772, 0.824]; met'."""
        return f"{self.statement()}; {self.status}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rule": self.rule,
            "status": self.status,
            "threshold": self.threshold,
            **self.figure.as_dict(),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Assessment:
    """A model's pooled backtest figures with their intervals, and its bars."""

    target: str
    cutoffs: tuple[str, ...]
    n: int
    n_pos: int
    figures: Mapping[str, Estimate]
    bars: tuple[Bar, ...]
    confidence: float
    resamples: int
    baseline: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        """No bar failed (bars the rows cannot decide pass)."""
        return all(b.passed for b in self.bars)

    @property
    def failures(self) -> list[str]:
        return [b.describe() for b in self.bars if b.status == "failed"]

    @property
    def not_shown(self) -> list[str]:
        return [b.describe() for b in self.bars if b.status == "not shown"]

    def verdicts(self) -> dict[str, Status]:
        """Bar name -> status: what two callers compare to agree."""
        return {b.name: b.status for b in self.bars}

    def with_bar(self, bar: Bar) -> Assessment:
        return Assessment(
            self.target,
            self.cutoffs,
            self.n,
            self.n_pos,
            self.figures,
            (*self.bars, bar),
            self.confidence,
            self.resamples,
            self.baseline,
            self.notes,
        )

    def record(self) -> dict[str, Any]:
        """JSON-ready: pooled figures (value, low, high), bars, the verdict."""
        return {
            "target": self.target,
            "cutoffs": list(self.cutoffs),
            "n": self.n,
            "n_pos": self.n_pos,
            "confidence": self.confidence,
            "resamples": self.resamples,
            **{name: e.as_dict() for name, e in self.figures.items()},
            "bars": [b.as_dict() for b in self.bars],
            "passed": self.passed,
            "failures": self.failures,
            "not_shown": self.not_shown,
        }


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# --- statistics on weighted rows ----------------------------------------------------------------
# Rows are sorted by cut-off; a resample is a row of weights (how often each row was drawn), so
# every figure is a weighted one, computed for all resamples of a batch at once.


class _Cutoffs:
    """Where each cut-off's rows start in rows sorted by cut-off."""

    def __init__(self, cutoff: np.ndarray[Any, Any]) -> None:
        n = len(cutoff)
        self.starts = (
            np.flatnonzero(np.r_[True, cutoff[1:] != cutoff[:-1]]) if n else np.zeros(0, int)
        )
        self.sizes = np.diff(np.r_[self.starts, n]).astype(np.int64)
        self.code = np.repeat(np.arange(len(self.sizes)), self.sizes)


class _Ranking:
    """ROC AUC over the (positive, negative) pairs of the same cut-off, for weighted rows."""

    def __init__(self, y: FloatArray, p: FloatArray, cut: _Cutoffs) -> None:
        self.order = np.lexsort((p, cut.code))  # by cut-off, then score
        ps, cs = p[self.order], cut.code[self.order]
        self.y = y[self.order]
        new = (
            np.r_[True, (ps[1:] != ps[:-1]) | (cs[1:] != cs[:-1])] if len(ps) else np.zeros(0, bool)
        )
        self.groups = np.flatnonzero(new)  # ties of one cut-off form a group
        group_cut = cs[self.groups]
        self.first = np.flatnonzero(np.r_[True, group_cut[1:] != group_cut[:-1]])
        self.group_to_cut = np.repeat(
            np.arange(len(self.first)), np.diff(np.r_[self.first, len(self.groups)])
        )

    def __call__(self, W: Weights) -> FloatArray:
        if not len(self.groups):
            return np.full(W.shape[0], NAN)
        Ws = W[:, self.order]
        pos = np.add.reduceat(Ws * self.y, self.groups, axis=1)
        neg = np.add.reduceat(Ws * (1.0 - self.y), self.groups, axis=1)
        below = np.cumsum(neg, axis=1) - neg  # negatives ranked below, from the first cut-off
        below -= below[:, self.first][:, self.group_to_cut]  # ... within the group's cut-off
        wins = np.add.reduceat(pos * (below + 0.5 * neg), self.first, axis=1).sum(axis=1)
        pairs = (
            np.add.reduceat(pos, self.first, axis=1) * np.add.reduceat(neg, self.first, axis=1)
        ).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1.0), NAN)


class _Calibration:
    """Brier score and ECE over all rows (equal-width bins, as models.evaluate)."""

    def __init__(self, y: FloatArray, p: FloatArray, bins: int) -> None:
        edges = np.linspace(0.0, 1.0, bins + 1)
        idx = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
        onehot = np.zeros((len(p), bins))
        onehot[np.arange(len(p)), idx] = 1.0
        self.gap = onehot * (y - p)[:, None]  # per bin: observed - predicted
        self.sq = (p - y) ** 2

    def brier(self, W: Weights, total: FloatArray) -> FloatArray:
        return np.asarray(W @ self.sq) / total

    def ece(self, W: Weights, total: FloatArray) -> FloatArray:
        return np.asarray(np.abs(W @ self.gap).sum(axis=1), dtype=np.float64) / total


class _Lift:
    """Expander rate among each cut-off's top 10% of scores over the overall rate."""

    def __init__(self, y: FloatArray, p: FloatArray, cut: _Cutoffs) -> None:
        self.order = np.lexsort((np.arange(len(p)), -p, cut.code))  # ties: row order
        self.y = y[self.order]
        self.top = np.ceil(0.1 * cut.sizes)  # rows in each cut-off's top decile
        self.starts, self.code = cut.starts, cut.code

    def __call__(self, W: Weights, total: FloatArray, positives: FloatArray) -> FloatArray:
        Ws = W[:, self.order]
        seen = np.cumsum(Ws, axis=1)
        offset = np.where(self.starts > 0, seen[:, np.maximum(self.starts - 1, 0)], 0.0)
        before = seen - Ws - offset[:, self.code]
        take = np.clip(self.top[self.code] - before, 0.0, Ws)  # share of a row inside the top
        top_rate = (take * self.y).sum(axis=1) / self.top.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(positives > 0, top_rate / (positives / total), NAN)


def _resample_weights(sizes: np.ndarray[Any, Any], resamples: int, seed: int) -> list[Weights]:
    """Bootstrap weights in batches: per cut-off, its size in rows drawn with replacement."""
    rng = np.random.default_rng(seed)
    n = int(sizes.sum())
    batch = max(1, min(resamples, BATCH_CELLS // max(n, 1)))
    out = []
    for start in range(0, resamples, batch):
        b = min(batch, resamples - start)
        parts = []
        for size in sizes:
            draws = rng.integers(0, size, (b, size)) + (np.arange(b) * size)[:, None]
            parts.append(np.bincount(draws.ravel(), minlength=b * size).reshape(b, size))
        out.append(np.concatenate(parts, axis=1).astype(np.float64))
    return out


def bootstrap(
    cutoff: Any,
    statistics: Callable[[Weights], dict[str, FloatArray]],
    resamples: int,
    seed: int,
    confidence: float,
    basic: Collection[str] = (),
) -> dict[str, Estimate]:
    """Each statistic on the rows as given (the value) and its interval over `resamples`
    resamples drawn within each cut-off: the percentile interval, or for the statistics named
    in `basic` the basic one (2 x value - the upper and lower quantiles, floored at 0), which
    carries a statistic's bias on few rows back instead of adding to it. `cutoff` labels the
    rows, which must be sorted by it; `statistics(W)` returns each figure for every row of
    weights W."""
    cut = _Cutoffs(np.asarray(cutoff))
    n = int(cut.sizes.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        point = statistics(np.ones((1, n)))
        draws: dict[str, list[FloatArray]] = {k: [] for k in point}
        for W in _resample_weights(cut.sizes, resamples, seed) if n else []:
            for k, v in statistics(W).items():
                draws[k].append(v)
    tail = (1.0 - confidence) / 2.0
    out = {}
    for k, v in point.items():
        values = np.concatenate(draws[k]) if draws[k] else np.zeros(0)
        values = values[~np.isnan(values)]
        low, high = (
            (float(q) for q in np.quantile(values, [tail, 1.0 - tail]))
            if values.size
            else (NAN, NAN)
        )
        value = float(v[0])
        if k in basic:
            low, high = max(2 * value - high, 0.0), 2 * value - low
        out[k] = Estimate(value, low, high)
    return out


# --- the assessment -----------------------------------------------------------------------------

# The figures of the last few assessments in this process, by what they were computed from: the
# pipeline assesses a new model to promote it and the model report assesses it again in the
# same run (the bootstrap is ~30 s on M's 245k backtest rows), and both get the same figures.
_FIGURES: dict[str, dict[str, Estimate]] = {}
_FIGURES_KEPT = 4


def _figures_key(arrays: tuple[Any, ...], settings: tuple[Any, ...]) -> str:
    digest = hashlib.blake2b(repr(settings).encode(), digest_size=16)
    for a in arrays:
        if a is None:
            digest.update(b"none")
            continue
        values = np.ascontiguousarray(a)
        digest.update(f"{values.dtype}{values.shape}".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def _remember(key: str, figures: dict[str, Estimate]) -> None:
    _FIGURES.pop(key, None)
    _FIGURES[key] = figures
    while len(_FIGURES) > _FIGURES_KEPT:
        del _FIGURES[next(iter(_FIGURES))]


def _rows(predictions: pd.DataFrame, target: str, model: str) -> pd.DataFrame:
    rows = predictions.loc[(predictions["target"] == target) & (predictions["model"] == model)]
    return rows.sort_values(["cutoff", "account_id"], kind="mergesort").reset_index(drop=True)


def _aligned(rows: pd.DataFrame, other: pd.DataFrame, what: str) -> FloatArray:
    """`other`'s p on `rows` (cutoff, account_id); a clear error on rows it lacks."""
    keyed = other.drop_duplicates(["cutoff", "account_id"]).set_index(["cutoff", "account_id"])["p"]
    index = pd.MultiIndex.from_arrays([rows["cutoff"], rows["account_id"]])
    p = keyed.reindex(index).to_numpy(dtype=np.float64)
    if np.isnan(p).any():
        missing = rows.loc[np.isnan(p)].iloc[0]
        raise ValueError(
            f"{what} has no prediction for {int(np.isnan(p).sum())} backtest row(s), e.g. "
            f"account {missing['account_id']} at cut-off {missing['cutoff']}"
        )
    return p


def assess(
    predictions: pd.DataFrame | None,
    params: Params,
    *,
    oracle: pd.DataFrame | None = None,
    target: str | None = None,
) -> Assessment:
    """The model's pooled backtest figures with bootstrap intervals and its bars.

    `predictions`: backtest test rows (cutoff, target, model, account_id, y, p;
    `TrainedModel.backtest_predictions`), None for a model trained without a backtest (every
    bar fails). `params`: the bars (`quality:` ROC AUC and Brier, `acceptance:` ECE, the
    baseline to beat, the oracle ratio and the interval settings). `oracle` (account_id,
    snapshot_date, p_expansion_90d): adds the oracle's ROC AUC and the oracle bar.
    """
    target = target or params.primary_target
    bars_cfg, quality = params.acceptance, params.quality
    empty = pd.DataFrame(columns=["cutoff", "target", "model", "account_id", "y", "p"])
    rows = _rows(predictions if predictions is not None else empty, target, MODEL)
    y = rows["y"].to_numpy(dtype=np.float64)
    p = rows["p"].to_numpy(dtype=np.float64)
    cut = _Cutoffs(rows["cutoff"].to_numpy())
    baseline = bars_cfg.must_beat_baseline
    notes: list[str] = []
    p_base: FloatArray | None = None
    if baseline is not None and predictions is not None and len(rows):
        others = predictions.loc[
            (predictions["target"] == target) & (predictions["model"] == baseline)
        ]
        if others.empty:
            notes.append(f"no {baseline} predictions on these rows: no baseline bar")
        else:
            p_base = _aligned(rows, others, f"the {baseline} baseline")
    p_oracle = (
        oracle_on_rows(rows, oracle, ORACLE_COLUMN).to_numpy(dtype=np.float64)
        if oracle is not None and len(rows)
        else None
    )
    ratio = bars_cfg.min_oracle_auc_ratio
    ranking = _Ranking(y, p, cut)
    calibration = _Calibration(y, p, bars_cfg.ece_bins)
    lift = _Lift(y, p, cut)
    base_ranking = _Ranking(y, p_base, cut) if p_base is not None else None
    oracle_ranking = _Ranking(y, p_oracle, cut) if p_oracle is not None else None

    def statistics(W: Weights) -> dict[str, FloatArray]:
        total = W.sum(axis=1)
        positives = np.asarray(W @ y)
        auc = ranking(W)
        out = {
            "roc_auc": auc,
            "brier": calibration.brier(W, total),
            "ece": calibration.ece(W, total),
            "lift_top_decile": lift(W, total, positives),
        }
        if base_ranking is not None:
            out["baseline_roc_auc"] = base = base_ranking(W)
            out["baseline_difference"] = auc - base
        if oracle_ranking is not None:
            out["oracle_roc_auc"] = truth = oracle_ranking(W)
            with np.errstate(invalid="ignore", divide="ignore"):
                out["oracle_ratio"] = auc / truth
            out["oracle_difference"] = auc - ratio * truth
        return out

    # ECE is biased upward on few rows (noise alone makes a bin miss): basic interval
    key = _figures_key(
        (y, p, p_base, p_oracle, cut.code),
        (bars_cfg.resamples, bars_cfg.seed, bars_cfg.confidence, bars_cfg.ece_bins, ratio),
    )
    kept = _FIGURES.get(key)
    figures = (
        dict(kept)
        if kept is not None
        else bootstrap(
            rows["cutoff"].to_numpy(),
            statistics,
            bars_cfg.resamples,
            bars_cfg.seed,
            bars_cfg.confidence,
            basic={"ece"},
        )
    )
    _remember(key, figures)

    bars = [
        Bar(
            "roc_auc",
            f"ROC AUC >= {quality.min_roc_auc}",
            figures["roc_auc"],
            quality.min_roc_auc,
            True,
        ),
        Bar(
            "brier",
            f"Brier <= {quality.max_brier}",
            figures["brier"],
            quality.max_brier,
            False,
            spec=".4f",
        ),
        Bar(
            "calibration",
            f"ECE <= {bars_cfg.max_ece}",
            figures["ece"],
            bars_cfg.max_ece,
            False,
            spec=".4f",
        ),
    ]
    if "baseline_difference" in figures:
        bars.append(
            Bar(
                "baseline",
                f"ROC AUC above {baseline}'s",
                figures["baseline_difference"],
                0.0,
                True,
                detail=f"{figures['roc_auc'].format()} vs {figures['baseline_roc_auc'].format()}",
                strict=True,
            )
        )
    if "oracle_difference" in figures:
        bars.append(
            Bar(
                "oracle",
                f"ROC AUC >= {ratio} x oracle's",
                figures["oracle_difference"],
                0.0,
                True,
                detail=(
                    f"oracle {figures['oracle_roc_auc'].format()}, "
                    f"ratio {figures['oracle_ratio'].format()}"
                ),
            )
        )
    return Assessment(
        target=target,
        cutoffs=tuple(str(c) for c in rows["cutoff"].unique()),
        n=len(rows),
        n_pos=int(y.sum()),
        figures=figures,
        bars=tuple(bars),
        confidence=bars_cfg.confidence,
        resamples=bars_cfg.resamples,
        baseline=baseline if "baseline_difference" in figures else None,
        notes=tuple(notes),
    )


def champion_bar(
    challenger: pd.DataFrame, champion: pd.DataFrame, params: Params, target: str | None = None
) -> Bar:
    """Challenger against champion on the rows both predicted (same cut-off, account and
    label): the paired difference of their ROC AUC must reach `quality.promotion_margin`.

    Both frames hold backtest-style rows (cutoff, target, model, account_id, y, p; the
    calibrated LightGBM's are used). Failed only when the whole interval of the difference lies
    below the margin; no common rows fail the bar.
    """
    target = target or params.primary_target
    margin = params.quality.promotion_margin
    mine, theirs = _rows(challenger, target, MODEL), _rows(champion, target, MODEL)
    common = mine.merge(
        theirs[["cutoff", "account_id", "y", "p"]],
        on=["cutoff", "account_id", "y"],
        suffixes=("", "_champion"),
    )
    y = common["y"].to_numpy(dtype=np.float64)
    cut = _Cutoffs(common["cutoff"].to_numpy())
    a = _Ranking(y, common["p"].to_numpy(dtype=np.float64), cut)
    b = _Ranking(y, common["p_champion"].to_numpy(dtype=np.float64), cut)

    def statistics(W: Weights) -> dict[str, FloatArray]:
        auc_a, auc_b = a(W), b(W)
        return {"challenger": auc_a, "champion": auc_b, "difference": auc_a - auc_b}

    acc = params.acceptance
    figures = bootstrap(
        common["cutoff"].to_numpy(), statistics, acc.resamples, acc.seed, acc.confidence
    )
    cutoffs = common["cutoff"].nunique()
    return Bar(
        "champion",
        f"ROC AUC >= champion's + {margin}",
        figures["difference"],
        margin,
        True,
        detail=(
            f"{figures['challenger'].format()} vs champion {figures['champion'].format()} on "
            f"{len(common):,} common rows of {cutoffs} cut-off{'s' if cutoffs != 1 else ''}"
        ),
    )
