"""The model report's charts: matplotlib figures as base64 PNG data URIs inside `<figure>`
elements, so the page that holds them needs no network access.

`model_charts` draws the charts that depend on the model alone (backtest ROC, calibration,
gain and lift, ROC AUC per cut-off, feature importance): `models.report.render_report` keeps
them in the caller's chart cache under the model version and `code_version()` (this module's
source), so a new chart style draws them again. `distribution_chart` depends on the scores and
is drawn on every report.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from models.evaluate import (
    ECE_BINS,
    calibration_table,
    expected_calibration_error,
    gain_table,
    oracle_on_rows,
    roc_points,
)
from models.train import TrainedModel


def code_version() -> str:
    """The first 12 hex characters of the sha256 of this module's source: what the charts
    kept in a cache were drawn with."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


COLORS = {
    "lightgbm": "#1f6feb",
    "lightgbm_uncalibrated": "#8fb8f7",
    "logistic": "#e8590c",
    "single_rule": "#868e96",
    "oracle": "#2f9e44",
}
LABELS = {
    "lightgbm": "LightGBM (calibrated)",
    "lightgbm_uncalibrated": "LightGBM (uncalibrated)",
    "logistic": "Logistic regression (baseline)",
    "single_rule": "Best single rule (baseline)",
    "oracle": "Oracle (true probability)",
}


# Text sizes in points, set on every chart just before it is saved (`_readable`): at DPI and
# the widths the report lays them out at (two-panel charts span the page: WIDE), 10 pt is
# about 15 CSS pixels on screen. tests/models/test_report_browser.py measures them in Chromium.
DPI = 110
TEXT_PT = {"title": 12.5, "label": 11.0, "tick": 10.0, "legend": 10.0, "note": 10.0}
WIDE = frozenset({"gain", "ranking", "importance"})  # two panels, or long labels: a whole row


def _readable(fig: Figure) -> None:
    """The house text sizes on every axis of `fig` (titles, labels, ticks, legends, notes)."""
    for ax in fig.axes:
        ax.title.set_fontsize(TEXT_PT["title"])
        ax.xaxis.label.set_fontsize(TEXT_PT["label"])
        ax.yaxis.label.set_fontsize(TEXT_PT["label"])
        ax.tick_params(labelsize=TEXT_PT["tick"])
        legend = ax.get_legend()
        if legend is not None:
            for text in legend.get_texts():
                text.set_fontsize(TEXT_PT["legend"])
        for text in ax.texts:
            text.set_fontsize(TEXT_PT["note"])


def _png(fig: Figure) -> str:
    """The figure as a base64 PNG data URI (no metadata, so no software URL inside)."""
    _readable(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def figure(uri: str, title: str, caption: str, chart_id: str, title_end: str = ".") -> str:
    """The chart as a <figure>: the image, then its title (ended by `title_end`) and caption.
    A two-panel chart (WIDE) has class `wide`: the report gives it a whole row."""
    wide = ' class="wide"' if chart_id in WIDE else ""
    return (
        f'<figure id="chart-{chart_id}" data-chart="{chart_id}"{wide}>'
        f'<img src="{uri}" alt="{_esc(title)}">'
        f"<figcaption><strong>{_esc(title)}{_esc(title_end)}</strong> {_esc(caption)}"
        "</figcaption></figure>"
    )


def _new_figure(width: float = 6.4, height: float = 4.4) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    ax.grid(True, color="#e9ecef", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _series(preds: pd.DataFrame, model: str) -> pd.DataFrame:
    return preds.loc[preds["model"] == model].sort_values("account_id", kind="mergesort")


def _curves(
    latest: pd.DataFrame, oracle: pd.DataFrame | None
) -> list[tuple[str, np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
    """(name, y, score) per model present at the latest cut-off, oracle last."""
    out = []
    for model in ("lightgbm", "logistic", "single_rule"):
        rows = _series(latest, model)
        if not rows.empty:
            out.append((model, rows["y"].to_numpy(), rows["p"].to_numpy(dtype=float)))
    if oracle is not None:
        rows = _series(latest, "lightgbm")
        if not rows.empty:
            p = oracle_on_rows(rows, oracle, "p_expansion_90d").to_numpy(dtype=float)
            out.append(("oracle", rows["y"].to_numpy(), p))
    return out


def _roc_chart(curves: Sequence[tuple[str, Any, Any]], cutoff: str) -> str:
    fig, ax = _new_figure(5.6, 5.0)
    ax.plot([0, 1], [0, 1], color="#adb5bd", linestyle="--", linewidth=1, label="Random (0.500)")
    for name, y, p in curves:
        pts = roc_points(y, p)
        if pts.empty:
            continue
        auc = float(np.trapezoid(pts["tpr"], pts["fpr"]))
        width = 2.2 if name == "lightgbm" else 1.4
        ax.plot(
            pts["fpr"],
            pts["tpr"],
            color=COLORS[name],
            linewidth=width,
            label=f"{LABELS[name]} ({auc:.3f})",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("False positive rate (non-expanding accounts flagged)")
    ax.set_ylabel("True positive rate (expanding accounts found)")
    ax.set_title(f"ROC curve, expansion, cut-off {cutoff} (AUC in brackets)")
    ax.legend(loc="lower right", frameon=False)
    return _png(fig)


def _gain_chart(curves: Sequence[tuple[str, Any, Any]], cutoff: str) -> str:
    fig = Figure(figsize=(10.5, 4.3))
    left, right = fig.subplots(1, 2)
    for ax in (left, right):
        ax.grid(True, color="#e9ecef", linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    left.plot([0, 100], [0, 100], color="#adb5bd", linestyle="--", linewidth=1, label="Random")
    width = 0.8 / max(len(curves), 1)
    for k, (name, y, p) in enumerate(curves):
        table = gain_table(y, p, bins=10)
        share = np.concatenate([[0.0], table["cum_share"].to_numpy() * 100])
        capture = np.concatenate([[0.0], table["cum_capture"].to_numpy() * 100])
        left.plot(share, capture, color=COLORS[name], marker="o", markersize=3, label=LABELS[name])
        right.bar(
            table["bin"] + (k - (len(curves) - 1) / 2) * width,
            table["lift"],
            width=width,
            color=COLORS[name],
            label=LABELS[name],
        )
    left.set_xlabel("Accounts contacted, best scores first (%)")
    left.set_ylabel("Expanding accounts captured (%)")
    left.set_title(f"Cumulative gain, cut-off {cutoff}")
    left.set_xlim(0, 100)
    left.set_ylim(0, 101)
    left.legend(loc="lower right", frameon=False)
    right.axhline(1.0, color="#adb5bd", linestyle="--", linewidth=1)
    right.set_xticks(range(1, 11))
    right.set_xlabel("Score decile (1 = highest scores)")
    right.set_ylabel("Lift (expansion rate / base rate)")
    right.set_title(f"Lift by decile, cut-off {cutoff}")
    right.legend(loc="upper right", frameon=False)
    fig.tight_layout()
    return _png(fig)


def _calibration_chart(latest: pd.DataFrame, cutoff: str) -> str:
    fig, ax = _new_figure(5.6, 5.0)
    top = 0.0
    for model in ("lightgbm", "lightgbm_uncalibrated"):
        rows = _series(latest, model)
        if rows.empty:
            continue
        y, p = rows["y"].to_numpy(), rows["p"].to_numpy(dtype=float)
        table = calibration_table(y, p, ECE_BINS)
        ece = expected_calibration_error(y, p, ECE_BINS)
        sizes = 12 + 180 * table["n"] / max(len(rows), 1)
        ax.plot(
            table["mean_predicted"],
            table["observed_rate"],
            color=COLORS[model],
            linewidth=1.6,
            label=f"{LABELS[model]} (ECE {ece:.3f})",
        )
        ax.scatter(table["mean_predicted"], table["observed_rate"], s=sizes, color=COLORS[model])
        top = max(top, float(table["mean_predicted"].max()), float(table["observed_rate"].max()))
    top = min(1.0, max(0.2, top * 1.1))
    ax.plot([0, top], [0, top], color="#adb5bd", linestyle="--", linewidth=1, label="Perfect")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("Mean predicted probability (10 equal-width bins)")
    ax.set_ylabel("Observed expansion rate")
    ax.set_title(f"Calibration, expansion, cut-off {cutoff} (dot size = rows)")
    ax.legend(loc="upper left", frameon=False)
    return _png(fig)


def _importance_chart(model: TrainedModel, target: str, top: int = 20) -> str:
    booster = model.boosters[target]
    gain = pd.Series(booster.feature_importance("gain"), index=booster.feature_name())
    gain = (gain / max(gain.sum(), 1e-12)).sort_values(ascending=False).head(top)[::-1]
    fig, ax = _new_figure(6.4, 0.28 * len(gain) + 1.2)
    ax.barh(gain.index, gain.to_numpy() * 100, color=COLORS["lightgbm"])
    for i, value in enumerate(gain.to_numpy() * 100):
        ax.text(value + 0.2, i, f"{value:.1f}%", va="center")
    ax.set_xlabel("Share of total split gain (%)")
    ax.set_title(f"Feature importance (gain), {target} model, top {len(gain)}")
    ax.tick_params(axis="y", labelsize=8.5)
    return _png(fig)


def distribution_chart(scores: pd.DataFrame) -> str:
    fig, ax = _new_figure(6.4, 4.2)
    p = scores["p_expansion"].astype(float)
    suppressed = scores["is_suppressed"].astype(bool) if "is_suppressed" in scores else p < -1
    upper = max(0.05, float(p.max()))
    bins = np.linspace(0.0, upper, 31)
    ax.hist(
        [p[~suppressed], p[suppressed]],
        bins=bins,
        stacked=True,
        color=[COLORS["lightgbm"], "#ced4da"],
        label=[
            f"In the action list ({int((~suppressed).sum())})",
            f"Suppressed ({int(suppressed.sum())})",
        ],
    )
    mean = float(p.mean()) if len(p) else math.nan
    ax.axvline(mean, color="#e8590c", linestyle="--", linewidth=1.2, label=f"Mean {mean:.3f}")
    ax.set_xlabel("p_expansion (calibrated probability of expansion in 90 days)")
    ax.set_ylabel("Accounts")
    ax.set_title("Score distribution of the active accounts")
    ax.legend(loc="upper right", frameon=False)
    return _png(fig)


def _auc_by_cutoff_chart(table: pd.DataFrame, metrics: pd.DataFrame, target: str) -> str:
    fig, ax = _new_figure(5.6, 4.2)
    x = list(table["cutoff"])
    series: dict[str, Any] = {"lightgbm": table["auc"], "logistic": table["baseline_auc"]}
    if not metrics.empty:
        rule = metrics[(metrics["target"] == target) & (metrics["model"] == "single_rule")]
        series["single_rule"] = rule.set_index("cutoff").reindex(x)["roc_auc"].to_numpy()
    if table["oracle_auc"].notna().any():
        series["oracle"] = table["oracle_auc"]
    for name, values in series.items():
        ax.plot(
            x, np.asarray(values, dtype=float), marker="o", color=COLORS[name], label=LABELS[name]
        )
    ax.set_ylabel("ROC AUC")
    ax.set_xlabel("Backtest cut-off (test snapshot date)")
    ax.set_title(f"ROC AUC per cut-off, {target}")
    ax.legend(loc="lower left", frameon=False)
    return _png(fig)


def model_charts(
    model: TrainedModel,
    preds: pd.DataFrame | None,
    table: pd.DataFrame,
    oracle: pd.DataFrame | None,
) -> dict[str, str]:
    """The charts that depend on the model alone (backtest curves, importance): chart id ->
    PNG data URI, in the order the report shows them (its titles and captions are the report's
    texts `chart_<id>_title` / `chart_<id>_caption`, models/phrases/<locale>.yaml)."""
    target = model.params.primary_target
    has_preds = preds is not None and not preds.empty
    charts: dict[str, str] = {}
    if has_preds:
        assert preds is not None
        latest_cutoff = str(table["cutoff"].iloc[-1])
        latest = preds[(preds["target"] == target) & (preds["cutoff"] == latest_cutoff)]
        curves = _curves(latest, oracle)
        charts["roc"] = _roc_chart(curves, latest_cutoff)
        charts["calibration"] = _calibration_chart(latest, latest_cutoff)
        charts["gain"] = _gain_chart(curves, latest_cutoff)
        charts["auc-by-cutoff"] = _auc_by_cutoff_chart(table, model.metrics_frame(), target)
    charts["importance"] = _importance_chart(model, target)
    return charts


RANKING_STYLE = {
    "default": (COLORS["lightgbm"], "-"),
    "probability": (COLORS["logistic"], "--"),
}


def ranking_chart(
    curve: pd.DataFrame, cutoff: str, labels: dict[str, str], mark: int | None = None
) -> str:
    """Expanders found (left) and expansion MRR captured (right: actual, solid; expected,
    dotted) against the accounts contacted down the action list, for each ranking of `curve`
    (models.ranking curve records of one cut-off); `labels` names each ranking in the legend,
    `mark` draws a line at that many accounts contacted.
    """
    fig = Figure(figsize=(10.5, 4.3))
    left, right = fig.subplots(1, 2)
    for ax in (left, right):
        ax.grid(True, color="#e9ecef", linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    for ranking, rows in curve.groupby("ranking", sort=False):
        rows = rows.sort_values("n_contacted", kind="mergesort")
        color, style = RANKING_STYLE.get(str(ranking), ("#868e96", "-."))
        label = labels.get(str(ranking), str(ranking))
        x = rows["n_contacted"].to_numpy(dtype=float)
        left.plot(x, rows["expanders"], color=color, linestyle=style, linewidth=2, label=label)
        right.plot(
            x,
            rows["expansion_mrr_captured"],
            color=color,
            linestyle=style,
            linewidth=2,
            label=label,
        )
        right.plot(
            x,
            rows["expected_mrr_captured"],
            color=color,
            linestyle=":",
            linewidth=1.2,
            label=f"{label}, expected",
        )
    for ax in (left, right):
        if mark is not None:
            ax.axvline(mark, color="#adb5bd", linestyle="--", linewidth=1)
        ax.set_xlabel("Accounts contacted, down the action list")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    left.set_ylabel("Accounts that expanded")
    left.set_title(f"Expanders found, cut-off {cutoff}")
    left.legend(loc="lower right", frameon=False)
    right.set_ylabel("Expansion MRR (reporting currency)")
    right.set_title(f"Expansion MRR captured, cut-off {cutoff}")
    right.legend(loc="lower right", frameon=False)
    fig.tight_layout()
    return _png(fig)
