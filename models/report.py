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

import html
import json
import math
import string
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

import pandas as pd

from models.acceptance import Assessment, Estimate, assess
from models.charts import code_version as charts_code_version
from models.charts import distribution_chart, figure, model_charts, ranking_chart
from models.evaluate import backtest_table
from models.fingerprint import frame_fingerprint
from models.money import DEFAULT_CURRENCY, currency_code, format_money
from models.params import Params
from models.phrasebook import DEFAULT_LOCALE, load_phrasebook, phrase_file
from models.ranking import ranking_label, ranking_summary, ranking_table, value_weight
from models.train import TrainedModel

TEMPLATE_PATH = Path(__file__).with_name("report_template.html")
TOP_N = 25
_FORMATTER = string.Formatter()


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


def _codes(names: Iterable[Any]) -> str:
    return ", ".join(f"<code>{_esc(n)}</code>" for n in names)


class _Texts:
    """The report's texts in one locale (the English table's for any it leaves out) and its
    amounts in one currency."""

    def __init__(self, locale: str, currency: str) -> None:
        self.locale, self.currency = locale, currency_code(currency)
        self._own = load_phrasebook(locale).report
        self._english = load_phrasebook(DEFAULT_LOCALE).report

    def plain(self, key: str, **fields: Any) -> str:
        """The text `key` with its {fields} filled in, as plain text."""
        text = self._own.get(key, self._english.get(key))
        if text is None:
            raise KeyError(f"no report text {key!r} in {phrase_file(DEFAULT_LOCALE)} (`report:`)")
        return text.format(**fields)

    def __call__(self, key: str, **fields: str) -> str:
        """The text `key` as HTML, its {fields} filled in with the HTML given."""
        text = self._own.get(key, self._english.get(key))
        if text is None:
            raise KeyError(f"no report text {key!r} in {phrase_file(DEFAULT_LOCALE)} (`report:`)")
        out: list[str] = []
        for literal, name, _, _ in _FORMATTER.parse(text):
            out.append(html.escape(literal, quote=False))
            if name is not None:
                out.append(fields[name])
        return "".join(out)

    def money(self, value: Any, decimals: int | None = 0) -> str:
        """An amount as HTML (whole units unless `decimals` says otherwise; None: the
        currency's own decimals), "&ndash;" when missing."""
        if _missing(value):
            return "&ndash;"
        return _esc(format_money(float(value), self.currency, self.locale, decimals))

    def join(self, items: Iterable[str]) -> str:
        return _esc(self.plain("list_separator")).join(items)


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: Sequence[bool] | None = None,
    css: str = "",
) -> str:
    """HTML table; header and cells are already escaped/formatted HTML."""
    numeric = numeric or [False] * len(header)
    head = "".join(
        f'<th class="num">{h}</th>' if n else f"<th>{h}</th>"
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


def _model_card(model: TrainedModel, snapshots: pd.DataFrame, t: _Texts) -> str:
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
    features = t("card_features_numeric", features=_codes(feats.numeric))
    if feats.derived:
        features += "<br>" + t("card_features_derived", features=_codes(feats.derived))
    features += "<br>" + t("card_features_categorical", features=_codes(feats.categorical))

    def code(value: str | None) -> str:
        return f"<code>{_esc(value) if value else t('unknown')}</code>"

    rows = [
        (t("card_version"), code(model.version or "unregistered")),
        (t("card_trained_at"), _esc(model.trained_at) if model.trained_at else t("not_saved")),
        (t("card_code_version"), code(model.code_version)),
        (t("card_training_fingerprint"), code(model.data_fingerprint)),
        (t("card_scored_fingerprint"), code(frame_fingerprint(snapshots)[:16])),
        (
            t("card_training_window"),
            t(
                "card_training_window_value",
                start=_esc(model.training_window_start),
                end=_esc(model.training_window_end),
                validation_start=_esc(model.validation_start),
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
                    target=_esc(target),
                    label=f"<code>{_esc(params.targets[target])}</code>",
                    trees=_esc(model.best_iterations.get(target, "?")),
                    method=_esc(model.calibrators[target].method),
                )
                for target in model.targets
            ),
        ),
        (t("card_label"), t("card_label_value", days=str(params.label_horizon_days))),
        (t("card_features", n=str(len(model.features))), features),
        (t("card_lightgbm"), ", ".join(f"{_esc(k)}={_esc(v)}" for k, v in key_params.items())),
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
    return _table(["", ""], rows, css="card").replace(
        "<thead><tr><th></th><th></th></tr></thead>", ""
    )


def _interval(estimate: Estimate | None, spec: str) -> str:
    """A pooled figure with its interval below it, as HTML ("&ndash;" when absent)."""
    if estimate is None or _missing(estimate.value):
        return "&ndash;"
    return (
        f"{_fmt(estimate.value, spec)}<br><small>[{_fmt(estimate.low, spec)}, "
        f"{_fmt(estimate.high, spec)}]</small>"
    )


def _backtest_section(
    model: TrainedModel,
    table: pd.DataFrame,
    has_oracle: bool,
    t: _Texts,
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
    if assessment is not None and assessment.n:
        # the cut-offs together, each figure with its interval (models.acceptance)
        f = assessment.figures.get
        cells = [
            t("pooled"),
            _fmt(assessment.n, ","),
            _fmt(assessment.n_pos, ","),
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
    main = _table([t(h) for h in header], rows, numeric)

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
    targets = _table(
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


def _bars(assessment: Assessment | None, params: Params, t: _Texts) -> str:
    """The bars of `models.acceptance` (the same the pipeline promotes on and make evaluate
    prints): each bar's figure with its interval and its status."""
    if assessment is None or not assessment.n:
        return ""
    rows = []
    for bar in assessment.bars:
        rule = t(
            f"bar_{bar.name}",
            threshold=_esc(f"{bar.threshold:g}"),
            baseline=_esc(assessment.baseline),
            ratio=_esc(f"{params.acceptance.min_oracle_auc_ratio:g}"),
            margin=_esc(f"{params.quality.promotion_margin:g}"),
        )
        css, key = _STATUS_HTML[bar.status]
        status = (
            f'<span class="{css}" data-bar="{_esc(bar.name)}" data-status="{_esc(bar.status)}">'
            f"{t(key)}</span>"
        )
        spec = ("+" if bar.name in {"baseline", "oracle", "champion"} else "") + bar.spec
        f = bar.figure
        rows.append(
            [rule, _fmt(f.value, spec), f"[{_fmt(f.low, spec)}, {_fmt(f.high, spec)}]", status]
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
    return f"<p>{text}</p>\n" + _table(header, rows, [False, True, True, False])


def _offer_type(offer_type: Any, t: _Texts) -> str:
    try:
        return t(f"offer_type_{offer_type}")
    except KeyError:
        return _esc(offer_type)


def _score_summary(scores: pd.DataFrame, t: _Texts) -> str:
    n = len(scores)
    suppressed = scores["is_suppressed"].astype(bool)
    summary = t(
        "summary",
        accounts=f"{n:,}",
        mean=f"{scores['p_expansion'].mean():.3f}",
        listed=f"{int((~suppressed).sum()):,}",
        suppressed=f"{int(suppressed.sum()):,}",
        expected=t.money(scores.loc[~suppressed, "expected_expansion_mrr"].sum()),
    )
    parts = [f"<p>{summary}</p>"]
    if "touch_tier" in scores:
        tiers = (
            scores.assign(listed=~suppressed)
            .groupby("touch_tier")
            .agg(
                accounts=("account_id", "size"),
                listed=("listed", "sum"),
                expected=("expected_expansion_mrr", "sum"),
            )
            .sort_values("expected", ascending=False)
        )
        parts.append(
            _table(
                [
                    t("col_touch_tier"),
                    t("col_accounts"),
                    t("col_in_action_list"),
                    t("col_expected_expansion_mrr"),
                ],
                [
                    [
                        _esc(tier),
                        _fmt(int(r["accounts"]), ","),
                        _fmt(int(r["listed"]), ","),
                        t.money(r["expected"]),
                    ]
                    for tier, r in tiers.iterrows()
                ],
                [False, True, True, True],
            )
        )
    reasons = scores["suppression_reason"].dropna().str.split("; ").explode().value_counts()
    if len(reasons):
        parts.append(
            _table(
                [t("col_suppression_reason"), t("col_accounts")],
                [[_esc(r), _fmt(int(c), ",")] for r, c in reasons.items()],
                [False, True],
            )
        )
    if "offer_type" in scores:
        offers = scores.loc[~suppressed, "offer_type"].value_counts()
        counts = t.join(
            t("offer_count", offer_type=_offer_type(k, t), count=f"{int(v):,}")
            for k, v in offers.items()
        )
        parts.append(f"<p>{t('offers_in_list', offers=counts)}</p>")
    return "\n".join(parts)


def _top_accounts(scores: pd.DataFrame, snapshots: pd.DataFrame, top_n: int, t: _Texts) -> str:
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
        mrr = context["mrr"].get(r["account_id"]) if "mrr" in context else None
        reasons = "<br>".join(
            _esc(r[c]) for c in ("reason_1", "reason_2", "reason_3") if not _missing(r.get(c))
        )
        health = _fmt(r.get("health_score"), ".0f")
        stage = r.get("loyalty_stage")
        if not _missing(stage):
            try:
                health += "<br>" + t(f"loyalty_{stage}")
            except KeyError:  # a stage the phrase table does not name: as stored
                health += "<br>" + _esc(stage)
        rows.append(
            [
                _fmt(r.get("action_rank"), ""),
                who,
                t.money(mrr),
                _fmt(r["p_expansion"], ".1%"),
                _esc(r.get("next_best_offer")),
                t.money(r.get("offer_mrr")),
                t.money(r["expected_expansion_mrr"]),
                _esc(r.get("touch_tier")),
                health,
                reasons or "&ndash;",
            ]
        )
    header = [
        "col_rank",
        "col_account",
        "col_mrr",
        "col_p_expansion",
        "col_offer",
        "col_offer_mrr",
        "col_expected_mrr",
        "col_tier",
        "col_health",
        "col_why",
    ]
    return _table(
        [t(h) for h in header],
        rows,
        [True, False, True, True, False, True, True, False, True, False],
    )


def _rank_by_text(params: Params, weight: float | None, t: _Texts) -> str:
    """How the action list is ranked, as HTML (balanced: with its value weight)."""
    rank_by = params.action_list.rank_by
    if rank_by != "balanced":
        return t(f"rank_by_{rank_by}")
    return t("rank_by_balanced", weight=_fmt(value_weight(params, weight), "g"))


_RANKING_COLUMNS = {
    "hit_rate_default": "col_hit_rate_default",
    "hit_rate_probability": "col_hit_rate_probability",
    "expansion_mrr_captured_default": "col_mrr_default",
    "expansion_mrr_captured_probability": "col_mrr_probability",
    "expected_mrr_captured_default": "col_expected_default",
    "expected_mrr_captured_probability": "col_expected_probability",
}


def _ranking_section(model: TrainedModel, t: _Texts) -> str:
    """The action list on the backtest (models/ranking.py): how it is ranked, the figures at
    N = hit_rate_at per cut-off and their mean, the chart of the latest cut-off. Empty for a
    model saved without them."""
    if not model.ranking_metrics:
        return ""
    params, weight, n = (
        model.params,
        model.action_value_weight,
        model.params.action_list.hit_rate_at,
    )
    ratio = _fmt(params.action_list.min_hit_rate_ratio, "g")
    s = ranking_summary(model.ranking_metrics, params, weight)
    rank_by = _rank_by_text(params, weight, t)
    notes = [t("ranking_note", rank_by=rank_by, n=str(n), days=str(params.label_horizon_days))]
    if params.action_list.rank_by == "balanced" and params.action_list.value_weight == "auto":
        weights = "/".join(f"{w:g}" for w in sorted(set(params.action_list.auto_weights))[::-1])
        notes.append(
            t(
                "ranking_weight_auto",
                weight=_fmt(s["value_weight"], "g"),
                weights=_esc(weights),
                n=str(n),
                ratio=ratio,
            )
        )
    met = "pass" if s["hit_rate_ratio_met"] else "fail"
    verdict = (
        f'<span class="{met}">{t("ranking_met" if met == "pass" else "ranking_not_met")}</span>'
    )
    figures = {k: _fmt(s[f"hit_rate_{k}_mean"], ".1%") for k in ("default", "probability")}
    share = _fmt(s["hit_rate_ratio"], ".2f")
    notes.append(
        t("ranking_verdict", n=str(n), **figures, share=share, ratio=ratio, verdict=verdict)
    )
    table = ranking_table(model.ranking_metrics, f"top_{n}", mean=t.plain("row_mean"))
    rows = [
        [_esc(r["cutoff"]), _fmt(r["n_rows"], ",.0f")]
        + [_fmt(r[c], ".1%") if c.startswith("hit") else t.money(r[c]) for c in _RANKING_COLUMNS]
        for _, r in table.iterrows()
    ]
    header = [t("col_cutoff"), t("col_list_size"), *(t(h) for h in _RANKING_COLUMNS.values())]
    html_parts = [f"<h3>{t('section_ranking')}</h3>", *(f"<p>{note}</p>" for note in notes)]
    html_parts.append(_table(header, rows, [False, *[True] * (len(header) - 1)]))
    curve = pd.DataFrame(model.ranking_curve)
    if not curve.empty:
        latest = str(curve["cutoff"].max())
        labels = {"default": ranking_label(params, weight), "probability": "By probability"}
        uri = ranking_chart(curve.loc[curve["cutoff"] == latest], latest, labels, mark=n)
        html_parts.append(_figure("ranking", uri, t))
    return "\n".join(html_parts)


def _cached_charts(
    cache: MutableMapping[str, str] | None,
    model: TrainedModel,
    build: Callable[[], dict[str, str]],
) -> dict[str, str]:
    """The model's chart images (chart id -> PNG data URI), drawn once per model version
    (matplotlib takes seconds and the backtest does not change between scoring runs) and kept
    in `cache` as a JSON object under '<version>-<chart code version>' (a new chart style draws
    them again). The images have no text that depends on the locale, so every locale's report
    uses the same ones."""
    if cache is None or not model.version:
        return dict(build())
    key = f"{model.version}-{charts_code_version()}"
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


def _figure(chart_id: str, uri: str, t: _Texts) -> str:
    name = chart_id.replace("-", "_")
    return figure(
        uri,
        t.plain(f"chart_{name}_title"),
        t.plain(f"chart_{name}_caption"),
        chart_id,
        title_end=t.plain("chart_title_end"),
    )


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
    t = _Texts(locale, currency)
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
    assessment = assess(preds, model.params, oracle=oracle) if has_preds else None
    backtest_html, targets_html = (
        _backtest_section(model, table, has_oracle, t, assessment)
        if has_preds
        else (f"<p>{t('no_backtest')}</p>", "")
    )
    images = _cached_charts(
        chart_cache if oracle is None else None,  # oracle charts depend on the oracle's rows
        model,
        build=lambda: model_charts(model, preds, table, oracle),
    )
    images["distribution"] = distribution_chart(scores)
    charts = [_figure(chart_id, uri, t) for chart_id, uri in images.items()]
    as_of = scores["as_of"].iloc[0] if len(scores) and "as_of" in scores else "?"
    version = model.version or "unregistered"
    template = Template(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return template.substitute(
        lang=_esc(locale),
        title=t("title", version=_esc(version)),
        lead=t(
            "lead",
            days=days,
            as_of=_esc(as_of),
            start=_esc(model.training_window_start),
            end=_esc(model.training_window_end),
        ),
        section_card=t("section_card"),
        section_backtest=t("section_backtest"),
        section_charts=t("section_charts"),
        nav_scores=t("nav_scores"),
        section_scores=t("section_scores", as_of=_esc(as_of)),
        nav_top=t("nav_top"),
        section_top=t("section_top"),
        section_targets=t("section_targets"),
        model_card=_model_card(model, snapshots, t),
        backtest_note=t(
            "backtest_note", days=days, oracle_note=t("oracle_note") if has_oracle else ""
        ),
        backtest_table=backtest_html,
        bars=_bars(assessment, model.params, t),
        targets_table=targets_html + _ranking_section(model, t),
        charts="\n".join(charts),
        score_summary=_score_summary(scores, t),
        top_note=t("top_note", rank_by=_rank_by_text(model.params, model.action_value_weight, t)),
        top_accounts=_top_accounts(scores, snapshots, top_n, t),
        footer=t("footer", version=_esc(version)),
    )
