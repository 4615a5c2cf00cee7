"""Model report: one self-contained, offline HTML page per model.

`render_report(model, snapshots, scores, oracle=None)` returns the page as a string: model card,
backtest against the baselines (and the demo oracle when given), ROC curve, cumulative gain and
lift, calibration, feature importance (gain), score distribution, and the top accounts with
their offers and reasons. Charts are PNG images embedded as base64 data URIs, the CSS is inline
(`report_template.html`, next to this module), and nothing is fetched from the network, so the
file can be mailed or opened from a file share.

Pure: the caller reads the inputs and writes the file (e.g. `<home>/reports/model_<version>.html`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from models.evaluate import (
    ECE_BINS,
    backtest_table,
    calibration_table,
    expected_calibration_error,
    gain_table,
    oracle_on_rows,
    roc_points,
)
from models.files import write_atomic
from models.fingerprint import frame_fingerprint
from models.train import TrainedModel

TEMPLATE_PATH = Path(__file__).with_name("report_template.html")
TOP_N = 25
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


# --- small HTML helpers ---------------------------------------------------------------------


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _fmt(value: Any, spec: str = "") -> str:
    if _missing(value):
        return "&ndash;"
    try:
        return _esc(format(value, spec))
    except (TypeError, ValueError):
        return _esc(value)


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: Sequence[bool] | None = None,
    css: str = "",
) -> str:
    """HTML table; cells are already escaped/formatted HTML."""
    numeric = numeric or [False] * len(header)
    head = "".join(
        f'<th class="num">{_esc(h)}</th>' if n else f"<th>{_esc(h)}</th>"
        for h, n in zip(header, numeric, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if n else f"<td>{c}</td>"
            for c, n in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# --- charts -----------------------------------------------------------------------------------


def _png(fig: Figure) -> str:
    """The figure as a base64 PNG data URI (no metadata, so no software URL inside)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(uri: str, title: str, caption: str, chart_id: str) -> str:
    return (
        f'<figure id="chart-{chart_id}" data-chart="{chart_id}">'
        f'<img src="{uri}" alt="{_esc(title)}">'
        f"<figcaption><strong>{_esc(title)}.</strong> {_esc(caption)}</figcaption></figure>"
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
    ax.set_xlabel("False positive rate (share of non-expanding accounts flagged)")
    ax.set_ylabel("True positive rate (share of expanding accounts found)")
    ax.set_title(f"ROC curve, expansion, cut-off {cutoff} (AUC in brackets)", fontsize=11)
    ax.legend(loc="lower right", fontsize=8.5, frameon=False)
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
    left.set_title(f"Cumulative gain, cut-off {cutoff}", fontsize=11)
    left.set_xlim(0, 100)
    left.set_ylim(0, 101)
    left.legend(loc="lower right", fontsize=8, frameon=False)
    right.axhline(1.0, color="#adb5bd", linestyle="--", linewidth=1)
    right.set_xticks(range(1, 11))
    right.set_xlabel("Score decile (1 = highest scores)")
    right.set_ylabel("Lift (expansion rate / base rate)")
    right.set_title(f"Lift by decile, cut-off {cutoff}", fontsize=11)
    right.legend(loc="upper right", fontsize=8, frameon=False)
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
    ax.set_title(f"Calibration, expansion, cut-off {cutoff} (dot size = rows)", fontsize=11)
    ax.legend(loc="upper left", fontsize=8.5, frameon=False)
    return _png(fig)


def _importance_chart(model: TrainedModel, target: str, top: int = 20) -> str:
    booster = model.boosters[target]
    gain = pd.Series(booster.feature_importance("gain"), index=booster.feature_name())
    gain = (gain / max(gain.sum(), 1e-12)).sort_values(ascending=False).head(top)[::-1]
    fig, ax = _new_figure(6.4, 0.28 * len(gain) + 1.2)
    ax.barh(gain.index, gain.to_numpy() * 100, color=COLORS["lightgbm"])
    for i, value in enumerate(gain.to_numpy() * 100):
        ax.text(value + 0.2, i, f"{value:.1f}%", va="center", fontsize=8)
    ax.set_xlabel("Share of total split gain (%)")
    ax.set_title(f"Feature importance (gain), {target} model, top {len(gain)}", fontsize=11)
    ax.tick_params(axis="y", labelsize=8.5)
    return _png(fig)


def _distribution_chart(scores: pd.DataFrame) -> str:
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
    ax.set_title("Score distribution of the active accounts", fontsize=11)
    ax.legend(loc="upper right", fontsize=8.5, frameon=False)
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
    ax.set_title(f"ROC AUC per cut-off, {target}", fontsize=11)
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    return _png(fig)


# --- sections ---------------------------------------------------------------------------------


def _model_card(model: TrainedModel, snapshots: pd.DataFrame) -> str:
    params = model.params
    lgbm = params.lightgbm
    feats = params.features
    key_params = {
        k: getattr(lgbm, k)
        for k in (
            "learning_rate",
            "num_leaves",
            "min_data_in_leaf",
            "min_data_in_leaf_share",
            "feature_fraction",
            "bagging_fraction",
            "lambda_l2",
            "early_stopping_metric",
            "imbalance",
            "refit",
        )
    }
    if lgbm.monotone_constraints:
        key_params["monotone_constraints"] = lgbm.monotone_constraints
    offer = model.offer_values
    offer_text = (
        "legacy: MRR x mean expansion ratio"
        if offer is None
        else (
            "seat price by tier "
            + ", ".join(f"{t}: ${v:,.2f}" for t, v in sorted(offer.seat_price_by_tier.items()))
            + f"; extra seats {offer.extra_seat_fraction:.0%} of seats; cross-sell MRR per seat "
            + ", ".join(
                f"{p}: ${v.get('*', math.nan):,.2f}"
                for p, v in sorted(offer.cross_sell_mrr_per_seat.items())
                if p != "*"
            )
        )
    )
    rows = [
        ("Version", f"<code>{_esc(model.version or 'unregistered')}</code>"),
        ("Trained at (UTC)", _esc(model.trained_at or "not saved")),
        ("Code version", f"<code>{_esc(model.code_version or 'unknown')}</code>"),
        ("Training data fingerprint", f"<code>{_esc(model.data_fingerprint or 'unknown')}</code>"),
        ("Scored data fingerprint", f"<code>{_esc(frame_fingerprint(snapshots)[:16])}</code>"),
        (
            "Training window",
            f"{_esc(model.training_window_start)} to {_esc(model.training_window_end)} "
            f"(snapshot dates; validation from {_esc(model.validation_start)})",
        ),
        (
            "Rows",
            f"{model.n_rows:,} learned from; early stopping fit on {model.n_train_rows:,}, "
            f"{model.n_validation_rows:,} held out for early stopping and calibration",
        ),
        (
            "Targets",
            ", ".join(
                f"{_esc(t)} (<code>{_esc(params.targets[t])}</code>, "
                f"{model.best_iterations.get(t, '?')} trees, "
                f"{_esc(model.calibrators[t].method)} calibration)"
                for t in model.targets
            ),
        ),
        ("Label", f"expansion within {params.label_horizon_days} days after the snapshot date"),
        (
            f"Features ({len(model.features)})",
            "numeric: "
            + ", ".join(f"<code>{_esc(f)}</code>" for f in feats.numeric)
            + (
                "<br>derived: " + ", ".join(f"<code>{_esc(f)}</code>" for f in feats.derived)
                if feats.derived
                else ""
            )
            + "<br>categorical: "
            + ", ".join(f"<code>{_esc(f)}</code>" for f in feats.categorical),
        ),
        ("LightGBM", ", ".join(f"{_esc(k)}={_esc(v)}" for k, v in key_params.items())),
        (
            "Backtest",
            f"{params.backtest.n_cutoffs} cut-offs, {params.backtest.validation_dates} "
            "validation date(s) each, time-ordered",
        ),
        ("Offer values", _esc(offer_text)),
    ]
    return _table(["", ""], [(_esc(k), v) for k, v in rows], css="card").replace(
        "<thead><tr><th></th><th></th></tr></thead>", ""
    )


def _backtest_section(
    model: TrainedModel, table: pd.DataFrame, has_oracle: bool
) -> tuple[str, str]:
    metrics = model.metrics_frame()
    target = model.params.primary_target
    header = ["Cut-off", "Rows", "Positives", "LightGBM AUC", "Logistic AUC", "Single rule AUC"]
    if has_oracle:
        header += ["Oracle AUC", "AUC / oracle"]
    header += ["PR AUC", "Brier", "ECE", "Top-decile lift", "Capture"]
    rows = []
    for _, r in table.iterrows():
        rule = metrics[
            (metrics["cutoff"] == r["cutoff"])
            & (metrics["target"] == target)
            & (metrics["model"] == "single_rule")
        ]
        rule_auc = float(rule["roc_auc"].iloc[0]) if len(rule) else math.nan
        cells = [
            _esc(r["cutoff"]),
            _fmt(r["n"], ","),
            _fmt(r["n_pos"], ","),
            _fmt(r["auc"], ".3f"),
            _fmt(r["baseline_auc"], ".3f"),
            _fmt(rule_auc, ".3f"),
        ]
        if has_oracle:
            cells += [_fmt(r["oracle_auc"], ".3f"), _fmt(r["auc_ratio"], ".3f")]
        cells += [
            _fmt(r["pr_auc"], ".3f"),
            _fmt(r["brier"], ".4f"),
            _fmt(r["ece"], ".4f"),
            _fmt(r["top_decile_lift"], ".2f"),
            _fmt(r["capture"], ".1%"),
        ]
        rows.append(cells)
    numeric = [False] + [True] * (len(header) - 1)
    main = _table(header, rows, numeric)

    lgbm = metrics[metrics["model"] == "lightgbm"] if not metrics.empty else metrics
    t_rows = []
    if not lgbm.empty:
        for _, rec in lgbm.sort_values(["cutoff", "target"], kind="mergesort").iterrows():
            cutoff, target_name = rec["cutoff"], rec["target"]
            t_rows.append(
                [
                    _esc(cutoff),
                    _esc(target_name),
                    _fmt(rec.get("n_pos"), ",.0f"),
                    _fmt(rec.get("roc_auc"), ".3f"),
                    _fmt(rec.get("pr_auc"), ".3f"),
                    _fmt(rec.get("brier"), ".4f"),
                    _fmt(rec.get("ece"), ".4f"),
                    _fmt(rec.get("lift_top_decile"), ".2f"),
                ]
            )
    targets = _table(
        ["Cut-off", "Target", "Positives", "ROC AUC", "PR AUC", "Brier", "ECE", "Top-decile lift"],
        t_rows,
        [False, False, True, True, True, True, True, True],
    )
    return main, targets


def _bars(model: TrainedModel, table: pd.DataFrame, has_oracle: bool) -> str:
    from models.evaluate import acceptance_failures

    if table.empty or not has_oracle:
        return ""
    bars = model.params.acceptance
    latest = table.iloc[-1]
    failures = acceptance_failures(
        latest, bars.min_oracle_auc_ratio, bars.max_ece, bars.must_beat_baseline is not None
    )
    verdict = (
        '<span class="pass">all bars met</span>'
        if not failures
        else '<span class="fail">' + _esc("; ".join(failures)) + "</span>"
    )
    return (
        f"<p>Acceptance on the latest cut-off {_esc(latest['cutoff'])}: ROC AUC &ge; "
        f"{bars.min_oracle_auc_ratio} &times; oracle, above the logistic baseline, ECE &le; "
        f"{bars.max_ece}: {verdict}.</p>"
    )


def _score_summary(scores: pd.DataFrame) -> str:
    n = len(scores)
    suppressed = scores["is_suppressed"].astype(bool)
    parts = [
        f"<p>{n:,} active accounts scored; mean p_expansion {scores['p_expansion'].mean():.3f}; "
        f"{int((~suppressed).sum()):,} in the action list, {int(suppressed.sum()):,} suppressed; "
        f"expected expansion MRR of the action list "
        f"${scores.loc[~suppressed, 'expected_expansion_mrr_usd'].sum():,.0f}.</p>"
    ]
    if "touch_tier" in scores:
        tiers = (
            scores.assign(listed=~suppressed)
            .groupby("touch_tier")
            .agg(
                accounts=("account_id", "size"),
                listed=("listed", "sum"),
                expected=("expected_expansion_mrr_usd", "sum"),
            )
            .sort_values("expected", ascending=False)
        )
        parts.append(
            _table(
                ["Touch tier", "Accounts", "In the action list", "Expected expansion MRR"],
                [
                    [
                        _esc(t),
                        _fmt(int(r["accounts"]), ","),
                        _fmt(int(r["listed"]), ","),
                        f"${r['expected']:,.0f}",
                    ]
                    for t, r in tiers.iterrows()
                ],
                [False, True, True, True],
            )
        )
    reasons = scores["suppression_reason"].dropna().str.split("; ").explode().value_counts()
    if len(reasons):
        parts.append(
            _table(
                ["Suppression reason (an account can have several)", "Accounts"],
                [[_esc(r), _fmt(int(c), ",")] for r, c in reasons.items()],
                [False, True],
            )
        )
    if "offer_type" in scores:
        offers = scores.loc[~suppressed, "offer_type"].value_counts()
        parts.append(
            "<p>Next-best offers in the action list: "
            + ", ".join(f"{_esc(k)} {int(v):,}" for k, v in offers.items())
            + ".</p>"
        )
    return "\n".join(parts)


def _top_accounts(scores: pd.DataFrame, snapshots: pd.DataFrame, top_n: int) -> str:
    if "action_rank" in scores:
        listed = scores[scores["action_rank"].notna()].sort_values("action_rank").head(top_n)
    else:
        listed = scores[~scores["is_suppressed"].astype(bool)].head(top_n)
    context = (
        snapshots.drop_duplicates("account_id", keep="last").set_index("account_id")
        if "account_id" in snapshots
        else pd.DataFrame()
    )
    rows = []
    for _, r in listed.iterrows():
        name = r.get("account_name")
        who = _esc(r["account_id"]) + (f"<br>{_esc(name)}" if not _missing(name) else "")
        owner = r.get("owner_name")
        if not _missing(owner):
            who += f'<br><span class="pill">{_esc(owner)}</span>'
        mrr = context["mrr_usd"].get(r["account_id"]) if "mrr_usd" in context else None
        reasons = "<br>".join(
            _esc(r[c]) for c in ("reason_1", "reason_2", "reason_3") if not _missing(r.get(c))
        )
        rows.append(
            [
                _fmt(r.get("action_rank"), ""),
                who,
                f"${mrr:,.0f}" if not _missing(mrr) else "&ndash;",
                _fmt(r["p_expansion"], ".1%"),
                _esc(r.get("next_best_offer")),
                f"${r['offer_mrr_usd']:,.0f}"
                if not _missing(r.get("offer_mrr_usd"))
                else "&ndash;",
                f"${r['expected_expansion_mrr_usd']:,.0f}",
                _esc(r.get("touch_tier")),
                reasons or "&ndash;",
            ]
        )
    return _table(
        [
            "Rank",
            "Account",
            "MRR",
            "p(expansion)",
            "Offer",
            "Offer MRR",
            "Expected MRR",
            "Tier",
            "Why",
        ],
        rows,
        [True, False, True, True, False, True, True, False, False],
    )


def _model_charts(
    model: TrainedModel,
    preds: pd.DataFrame | None,
    table: pd.DataFrame,
    oracle: pd.DataFrame | None,
) -> list[str]:
    """The charts that depend on the model alone (backtest curves, importance)."""
    target = model.params.primary_target
    has_preds = preds is not None and not preds.empty
    charts: list[str] = []
    if has_preds:
        assert preds is not None
        latest_cutoff = str(table["cutoff"].iloc[-1])
        latest = preds[(preds["target"] == target) & (preds["cutoff"] == latest_cutoff)]
        curves = _curves(latest, oracle)
        charts.append(
            _figure(
                _roc_chart(curves, latest_cutoff),
                "ROC curve",
                "How well each model ranks expanding accounts above the others on the latest "
                "backtest cut-off; the oracle is the generator's true probability (the best "
                "achievable ranking).",
                "roc",
            )
        )
        charts.append(
            _figure(
                _calibration_chart(latest, latest_cutoff),
                "Calibration",
                "Observed expansion rate against the predicted probability; on the dashed "
                "line a predicted 30% means 30% of those accounts expanded.",
                "calibration",
            )
        )
        charts.append(
            _figure(
                _gain_chart(curves, latest_cutoff),
                "Cumulative gain and lift",
                "Left: share of the expanding accounts found when contacting the best-scored "
                "x% first. Right: expansion rate per score decile relative to the base rate.",
                "gain",
            )
        )
        charts.append(
            _figure(
                _auc_by_cutoff_chart(table, model.metrics_frame(), target),
                "ROC AUC per backtest cut-off",
                "Stability over time of the model, its baselines and the oracle.",
                "auc-by-cutoff",
            )
        )
    charts.append(
        _figure(
            _importance_chart(model, target),
            "Feature importance",
            "Share of the expansion model's total split gain per feature (what the trees rely "
            "on; direction and size per account are in the reasons).",
            "importance",
        )
    )
    return charts


def _cached_charts(
    cache_dir: Path | None, model: TrainedModel, build: Callable[[], list[str]]
) -> list[str]:
    """The model's charts, rendered once per model version (matplotlib takes seconds and the
    backtest does not change between scoring runs) and kept in `cache_dir`, keyed by the
    version and this module's source (a new chart style re-renders)."""
    if cache_dir is None or not model.version:
        return list(build())
    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    path = cache_dir / f"{model.version}-{code}.json"
    if path.is_file():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(cached, list) and all(isinstance(c, str) for c in cached):
                return cached
        except (OSError, ValueError):
            pass  # unreadable: render again
    charts = list(build())
    write_atomic(path, json.dumps(charts))
    return charts


def render_report(
    model: TrainedModel,
    snapshots: pd.DataFrame,
    scores: pd.DataFrame,
    oracle: pd.DataFrame | None = None,
    top_n: int = TOP_N,
    chart_cache: Path | None = None,
) -> str:
    """The model report as one self-contained HTML page (no network access needed to view it).

    `model`: a TrainedModel (from `models.registry.load_model` for version, code version and
    fingerprint). `snapshots`: marts.account_snapshots rows at least for the scored date
    (context for the top accounts and the scored-data fingerprint). `scores`: the output of
    `models.score.score_accounts` (optionally with account_name / owner_name merged in).
    `oracle`: the demo generator's expansion_oracle.parquet, to compare with the best
    achievable. Backtest charts need the model's backtest predictions (kept since they were
    introduced; older models show the table only). `chart_cache`: a directory where the
    charts that depend on the model alone are kept between runs (rendered once per version).
    """
    target = model.params.primary_target
    preds = model.backtest_predictions
    has_preds = preds is not None and not preds.empty
    table = (
        backtest_table(preds, target, oracle)
        if preds is not None and has_preds
        else pd.DataFrame(columns=["cutoff", "auc", "baseline_auc", "oracle_auc"])
    )
    has_oracle = oracle is not None and has_preds
    backtest_html, targets_html = (
        _backtest_section(model, table, has_oracle)
        if has_preds
        else ("<p>No backtest predictions kept with this model.</p>", "")
    )
    charts = _cached_charts(
        chart_cache if oracle is None else None,  # oracle charts depend on the oracle's rows
        model,
        build=lambda: _model_charts(model, preds, table, oracle),
    )
    charts.append(
        _figure(
            _distribution_chart(scores),
            "Score distribution",
            "Calibrated expansion probabilities of the scored accounts; suppressed accounts "
            "keep their score but are not approached.",
            "distribution",
        )
    )
    as_of = scores["as_of"].iloc[0] if len(scores) and "as_of" in scores else "?"
    version = model.version or "unregistered"
    oracle_note = (
        " The oracle column is the demo generator's true probability on the same rows: the "
        "best ranking any model could reach."
        if has_oracle
        else ""
    )
    template = Template(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return template.substitute(
        title=_esc(f"Expansion model {version}"),
        lead=_esc(
            f"Predicts which accounts expand (upsell or cross-sell) within "
            f"{model.params.label_horizon_days} days. Scores as of {as_of}; trained on snapshots "
            f"{model.training_window_start} to {model.training_window_end}."
        ),
        model_card=_model_card(model, snapshots),
        oracle_note=_esc(oracle_note),
        backtest_table=backtest_html,
        bars=_bars(model, table, has_oracle),
        targets_table=targets_html,
        charts="\n".join(charts),
        as_of=_esc(as_of),
        score_summary=_score_summary(scores),
        rank_by=_esc(
            "expected expansion MRR"
            if model.params.action_list.rank_by == "expected_mrr"
            else "p_expansion"
        ),
        top_accounts=_top_accounts(scores, snapshots, top_n),
        footer=_esc(
            f"Generated by models/report.py for model {version}. Self-contained: the charts are "
            "embedded images; nothing is loaded from the network."
        ),
    )
