"""Model report: one self-contained, offline HTML page per model.

`render_report(model, snapshots, scores, oracle=None)` returns the page as a string: model card,
backtest against the baselines (and the demo oracle when given), ROC curve, cumulative gain and
lift, calibration, feature importance (gain), score distribution, and the top accounts with
their offers and reasons. Charts are PNG images embedded as base64 data URIs, the CSS is inline
(`report_template.html`, next to this module), and nothing is fetched from the network, so the
file can be mailed or opened from a file share.

The charts are drawn by `models.charts`. Pure: the caller reads the inputs, writes the file
(e.g. `<home>/reports/model_<version>.html`) and, to draw the model's charts once per version,
passes a `chart_cache` mapping it keeps between runs (on disk: `JsonFileCache`, in files.py).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

import pandas as pd

from models.charts import code_version as charts_code_version
from models.charts import distribution_chart, figure, model_charts
from models.evaluate import acceptance_failures, backtest_table
from models.fingerprint import frame_fingerprint
from models.train import TrainedModel

TEMPLATE_PATH = Path(__file__).with_name("report_template.html")
TOP_N = 25


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


def _cached_charts(
    cache: MutableMapping[str, str] | None, model: TrainedModel, build: Callable[[], list[str]]
) -> list[str]:
    """The model's charts, rendered once per model version (matplotlib takes seconds and the
    backtest does not change between scoring runs) and kept in `cache` as a JSON list under
    '<version>-<chart code version>' (a new chart style re-renders)."""
    if cache is None or not model.version:
        return list(build())
    key = f"{model.version}-{charts_code_version()}"
    kept = cache.get(key)
    if kept is not None:
        try:
            cached = json.loads(kept)
            if isinstance(cached, list) and all(isinstance(c, str) for c in cached):
                return cached
        except ValueError:
            pass  # unreadable: render again
    charts = list(build())
    cache[key] = json.dumps(charts)
    return charts


def render_report(
    model: TrainedModel,
    snapshots: pd.DataFrame,
    scores: pd.DataFrame,
    oracle: pd.DataFrame | None = None,
    top_n: int = TOP_N,
    chart_cache: MutableMapping[str, str] | None = None,
) -> str:
    """The model report as one self-contained HTML page (no network access needed to view it).

    `model`: a TrainedModel (as the registry loads it, for version, code version and
    fingerprint). `snapshots`: marts.account_features rows at least for the scored date
    (context for the top accounts and the scored-data fingerprint). `scores`: the output of
    `models.score.score_accounts` (optionally with account_name / owner_name merged in).
    `oracle`: the demo generator's expansion_oracle.parquet, to compare with the best
    achievable. Backtest charts need the model's backtest predictions (kept since they were
    introduced; older models show the table only). `chart_cache`: a mapping the caller keeps
    between runs (a dict, or on disk `JsonFileCache` from files.py) where the charts that depend
    on the model alone are kept, so they are rendered once per version.
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
        build=lambda: model_charts(model, preds, table, oracle),
    )
    charts.append(
        figure(
            distribution_chart(scores),
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
