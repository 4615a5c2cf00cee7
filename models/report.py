"""Model report: one self-contained, offline HTML page per model.

`render_report(model, snapshots, scores, oracle=None, locale=..., currency=...)` returns the
page as a string: model card, backtest against the baselines (and the demo oracle when given),
ROC curve, cumulative gain and lift, calibration, feature importance (gain), score
distribution, and the top accounts with their offers and reasons. Charts are PNG images
embedded as base64 data URIs, the CSS is inline (`report_template.html`, next to this module),
and nothing is fetched from the network, so the file can be mailed or opened from a file share.

What a person reads is in `locale`: the `report:` section of models/phrases/<locale>.yaml (a
text that table leaves out is taken from en.yaml). The charts' own axis and legend texts stay
in English (drawing Japanese would need a CJK font on the machine); their titles and captions
follow the locale. Amounts are whole units of the reporting `currency` (that of the scores and
the mrr column), written as in the locale (models/money.py).

The charts are drawn by `models.charts`. Pure: the caller reads the inputs, writes the file
(e.g. `<home>/reports/model_<version>.html`) and, to draw the model's charts once per version,
passes a `chart_cache` mapping it keeps between runs (on disk: `JsonFileCache`, in files.py).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, MutableMapping
from pathlib import Path
from string import Template

import pandas as pd

from models.acceptance import Assessment, Estimate, assess
from models.charts import code_version as charts_code_version
from models.charts import distribution_chart, model_charts
from models.evaluate import backtest_table
from models.fingerprint import frame_fingerprint
from models.money import DEFAULT_CURRENCY
from models.params import Params
from models.phrasebook import DEFAULT_LOCALE
from models.report_actions import rank_by_text, ranking_section, score_summary, top_accounts
from models.report_html import Texts, codes, esc, figure_html, fmt, html_table, missing
from models.train import TrainedModel

TEMPLATE_PATH = Path(__file__).with_name("report_template.html")
TOP_N = 25
# --- sections ---------------------------------------------------------------------------------


def _model_card(model: TrainedModel, snapshots: pd.DataFrame, t: Texts) -> str:
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
    features = t("card_features_numeric", features=codes(feats.numeric))
    if feats.derived:
        features += "<br>" + t("card_features_derived", features=codes(feats.derived))
    features += "<br>" + t("card_features_categorical", features=codes(feats.categorical))

    def code(value: str | None) -> str:
        return f"<code>{esc(value) if value else t('unknown')}</code>"

    rows = [
        (t("card_version"), code(model.version or "unregistered")),
        (t("card_trained_at"), esc(model.trained_at) if model.trained_at else t("not_saved")),
        (t("card_code_version"), code(model.code_version)),
        (t("card_training_fingerprint"), code(model.data_fingerprint)),
        (t("card_scored_fingerprint"), code(frame_fingerprint(snapshots)[:16])),
        (
            t("card_training_window"),
            t(
                "card_training_window_value",
                start=esc(model.training_window_start),
                end=esc(model.training_window_end),
                validation_start=esc(model.validation_start),
            ),
        ),
        (
            t("card_rows"),
            t(
                "card_rows_value",
                rows=f"{model.n_rows:,}",
                train_rows=f"{model.n_train_rows:,}",
                validation_rows=f"{model.n_validation_rows:,}",
            ),
        ),
        (
            t("card_targets"),
            t.join(
                t(
                    "card_target_value",
                    target=esc(target),
                    label=f"<code>{esc(params.targets[target])}</code>",
                    trees=esc(model.best_iterations.get(target, "?")),
                    method=esc(model.calibrators[target].method),
                )
                for target in model.targets
            ),
        ),
        (t("card_label"), t("card_label_value", days=str(params.label_horizon_days))),
        (t("card_features", n=str(len(model.features))), features),
        (t("card_lightgbm"), ", ".join(f"{esc(k)}={esc(v)}" for k, v in key_params.items())),
        (
            t("card_backtest"),
            t(
                "card_backtest_value",
                cutoffs=str(params.backtest.n_cutoffs),
                validation_dates=str(params.backtest.validation_dates),
            ),
        ),
        (t("card_offer_values"), t("card_offer_values_value")),
    ]
    return html_table(["", ""], rows, css="card").replace(
        "<thead><tr><th></th><th></th></tr></thead>", ""
    )


def _interval(estimate: Estimate | None, spec: str) -> str:
    """A pooled figure with its interval below it, as HTML ("&ndash;" when absent)."""
    if estimate is None or missing(estimate.value):
        return "&ndash;"
    return (
        f"{fmt(estimate.value, spec)}<br><small>[{fmt(estimate.low, spec)}, "
        f"{fmt(estimate.high, spec)}]</small>"
    )


def _backtest_section(
    model: TrainedModel,
    table: pd.DataFrame,
    has_oracle: bool,
    t: Texts,
    assessment: Assessment | None = None,
) -> tuple[str, str]:
    metrics = model.metrics_frame()
    target = model.params.primary_target
    header = [
        "col_cutoff",
        "col_rows",
        "col_positives",
        "col_lightgbm_auc",
        "col_logistic_auc",
        "col_single_rule_auc",
    ]
    if has_oracle:
        header += ["col_oracle_auc", "col_auc_ratio"]
    header += ["col_pr_auc", "col_brier", "col_ece", "col_top_decile_lift", "col_capture"]
    rows = []
    for _, r in table.iterrows():
        rule = metrics[
            (metrics["cutoff"] == r["cutoff"])
            & (metrics["target"] == target)
            & (metrics["model"] == "single_rule")
        ]
        rule_auc = float(rule["roc_auc"].iloc[0]) if len(rule) else math.nan
        cells = [
            esc(r["cutoff"]),
            fmt(r["n"], ","),
            fmt(r["n_pos"], ","),
            fmt(r["auc"], ".3f"),
            fmt(r["baseline_auc"], ".3f"),
            fmt(rule_auc, ".3f"),
        ]
        if has_oracle:
            cells += [fmt(r["oracle_auc"], ".3f"), fmt(r["auc_ratio"], ".3f")]
        cells += [
            fmt(r["pr_auc"], ".3f"),
            fmt(r["brier"], ".4f"),
            fmt(r["ece"], ".4f"),
            fmt(r["top_decile_lift"], ".2f"),
            fmt(r["capture"], ".1%"),
        ]
        rows.append(cells)
    if assessment is not None and assessment.n:
        # the cut-offs together, each figure with its interval (models.acceptance)
        f = assessment.figures.get
        cells = [
            t("pooled"),
            fmt(assessment.n, ","),
            fmt(assessment.n_pos, ","),
            _interval(f("roc_auc"), ".3f"),
            _interval(f("baseline_roc_auc"), ".3f"),
            "&ndash;",
        ]
        if has_oracle:
            cells += [_interval(f("oracle_roc_auc"), ".3f"), _interval(f("oracle_ratio"), ".3f")]
        cells += [
            "&ndash;",
            _interval(f("brier"), ".4f"),
            _interval(f("ece"), ".4f"),
            _interval(f("lift_top_decile"), ".2f"),
            "&ndash;",
        ]
        rows.append(cells)
    numeric = [False] + [True] * (len(header) - 1)
    main = html_table([t(h) for h in header], rows, numeric)

    lgbm = metrics[metrics["model"] == "lightgbm"] if not metrics.empty else metrics
    t_rows = []
    if not lgbm.empty:
        for _, rec in lgbm.sort_values(["cutoff", "target"], kind="mergesort").iterrows():
            cutoff, target_name = rec["cutoff"], rec["target"]
            t_rows.append(
                [
                    esc(cutoff),
                    esc(target_name),
                    fmt(rec.get("n_pos"), ",.0f"),
                    fmt(rec.get("roc_auc"), ".3f"),
                    fmt(rec.get("pr_auc"), ".3f"),
                    fmt(rec.get("brier"), ".4f"),
                    fmt(rec.get("ece"), ".4f"),
                    fmt(rec.get("lift_top_decile"), ".2f"),
                ]
            )
    target_header = [
        "col_cutoff",
        "col_target",
        "col_positives",
        "col_roc_auc",
        "col_pr_auc",
        "col_brier",
        "col_ece",
        "col_top_decile_lift",
    ]
    targets = html_table(
        [t(h) for h in target_header],
        t_rows,
        [False, False, True, True, True, True, True, True],
    )
    return main, targets


_STATUS_HTML = {
    "met": ("pass", "bar_met"),
    "not shown": ("", "bar_not_shown"),
    "failed": ("fail", "bar_failed"),
}


def _bars(assessment: Assessment | None, params: Params, t: Texts) -> str:
    """The bars of `models.acceptance` (the same the pipeline promotes on and make evaluate
    prints): each bar's figure with its interval and its status."""
    if assessment is None or not assessment.n:
        return ""
    rows = []
    for bar in assessment.bars:
        rule = t(
            f"bar_{bar.name}",
            threshold=esc(f"{bar.threshold:g}"),
            baseline=esc(assessment.baseline),
            ratio=esc(f"{params.acceptance.min_oracle_auc_ratio:g}"),
            margin=esc(f"{params.quality.promotion_margin:g}"),
        )
        css, key = _STATUS_HTML[bar.status]
        status = (
            f'<span class="{css}" data-bar="{esc(bar.name)}" data-status="{esc(bar.status)}">'
            f"{t(key)}</span>"
        )
        spec = ("+" if bar.name in {"baseline", "oracle", "champion"} else "") + bar.spec
        f = bar.figure
        rows.append(
            [rule, fmt(f.value, spec), f"[{fmt(f.low, spec)}, {fmt(f.high, spec)}]", status]
        )
    confidence = f"{assessment.confidence:.0%}"
    header = [
        t("col_bar"),
        t("col_figure"),
        t("col_interval", confidence=confidence),
        t("col_status"),
    ]
    failed = len(assessment.failures)
    verdict = (
        f'<span class="pass">{t("bars_met")}</span>'
        if not failed
        else f'<span class="fail">{t("bars_failed", n=str(failed))}</span>'
    )
    text = t(
        "bars",
        rows=f"{assessment.n:,}",
        cutoffs=str(len(assessment.cutoffs)),
        confidence=confidence,
        resamples=f"{assessment.resamples:,}",
        verdict=verdict,
    )
    return f"<p>{text}</p>\n" + html_table(header, rows, [False, True, True, False])


def _sections_code_version(locale: str) -> str:
    """What the backtest sections kept in a cache were written with: the sources of the
    modules that judge and word them, and the locale's phrase table."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in ("report.py", "report_html.py", "acceptance.py", "evaluate.py", "ranking.py"):
        digest.update((here / name).read_bytes())
    phrases = here / "phrases" / f"{locale}.yaml"
    if phrases.is_file():
        digest.update(phrases.read_bytes())
    return digest.hexdigest()[:12]


def _cached_model_parts(
    cache: MutableMapping[str, str] | None,
    model: TrainedModel,
    build: Callable[[], dict[str, str]],
    kind: str = "charts",
    code: str | None = None,
) -> dict[str, str]:
    """Parts of the report that depend on the model alone, made once per model version and
    kept in `cache` as a JSON object of strings under '<version>-<code version>':
    - the chart images (chart id -> PNG data URI; matplotlib takes seconds, and the images
      have no text that depends on the locale, so every locale's report uses the same ones);
    - with `kind="sections"`, the backtest sections in one locale and currency (the pooled
      bootstrap assessment behind them takes ~25 s on 250k backtest rows, and the backtest
      does not change between scoring runs).
    A new chart style or report code (`code`) makes them again."""
    if cache is None or not model.version:
        return dict(build())
    key = f"{model.version}-{code or charts_code_version()}"
    if kind != "charts":
        key += f"-{kind}"
    kept = cache.get(key)
    if kept is not None:
        try:
            cached = json.loads(kept)
            if isinstance(cached, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in cached.items()
            ):
                return cached
        except ValueError:
            pass  # unreadable: draw again
    charts = dict(build())
    cache[key] = json.dumps(charts)
    return charts


def render_report(
    model: TrainedModel,
    snapshots: pd.DataFrame,
    scores: pd.DataFrame,
    oracle: pd.DataFrame | None = None,
    top_n: int = TOP_N,
    chart_cache: MutableMapping[str, str] | None = None,
    *,
    locale: str = DEFAULT_LOCALE,
    currency: str = DEFAULT_CURRENCY,
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
    on the model alone are kept, so they are drawn once per version. `locale`: the language of
    the page's texts (models/phrases/<locale>.yaml, `report:`); `currency`: the reporting
    currency of the amounts (that of `scores` and the mrr column).
    """
    t = Texts(locale, currency)
    target = model.params.primary_target
    days = str(model.params.label_horizon_days)
    preds = model.backtest_predictions
    has_preds = preds is not None and not preds.empty
    table = (
        backtest_table(preds, target, oracle)
        if preds is not None and has_preds
        else pd.DataFrame(columns=["cutoff", "auc", "baseline_auc", "oracle_auc"])
    )
    has_oracle = oracle is not None and has_preds

    def sections() -> dict[str, str]:
        assessment = assess(preds, model.params, oracle=oracle) if has_preds else None
        backtest_html, targets_html = (
            _backtest_section(model, table, has_oracle, t, assessment)
            if has_preds
            else (f"<p>{t('no_backtest')}</p>", "")
        )
        return {
            "backtest": backtest_html,
            "bars": _bars(assessment, model.params, t),
            "targets": targets_html + ranking_section(model, t),
        }

    written = _cached_model_parts(
        chart_cache if oracle is None else None,  # the oracle's figures depend on its rows
        model,
        build=sections,
        kind=f"sections-{locale}-{currency}",
        code=_sections_code_version(locale),
    )
    images = _cached_model_parts(
        chart_cache if oracle is None else None,  # oracle charts depend on the oracle's rows
        model,
        build=lambda: model_charts(model, preds, table, oracle),
    )
    images["distribution"] = distribution_chart(scores)
    charts = [figure_html(chart_id, uri, t) for chart_id, uri in images.items()]
    as_of = scores["as_of"].iloc[0] if len(scores) and "as_of" in scores else "?"
    version = model.version or "unregistered"
    template = Template(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return template.substitute(
        lang=esc(locale),
        title=t("title", version=esc(version)),
        lead=t(
            "lead",
            days=days,
            as_of=esc(as_of),
            start=esc(model.training_window_start),
            end=esc(model.training_window_end),
        ),
        section_card=t("section_card"),
        section_backtest=t("section_backtest"),
        section_charts=t("section_charts"),
        nav_scores=t("nav_scores"),
        section_scores=t("section_scores", as_of=esc(as_of)),
        nav_top=t("nav_top"),
        section_top=t("section_top"),
        section_targets=t("section_targets"),
        model_card=_model_card(model, snapshots, t),
        backtest_note=t(
            "backtest_note", days=days, oracle_note=t("oracle_note") if has_oracle else ""
        ),
        backtest_table=written["backtest"],
        bars=written["bars"],
        targets_table=written["targets"],
        charts="\n".join(charts),
        score_summary=score_summary(scores, t),
        top_note=t("top_note", rank_by=rank_by_text(model.params, model.action_value_weight, t)),
        top_accounts=top_accounts(scores, snapshots, top_n, t),
        footer=t("footer", version=esc(version)),
    )
