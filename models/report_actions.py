"""The model report's action-list sections: the score summary, the top accounts with their
offers, health and reasons, and the action list on the backtest (hit rate and MRR found by the
default ranking against ranking by probability, with its chart)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from models.charts import ranking_chart
from models.params import Params
from models.ranking import ranking_label, ranking_summary, ranking_table, value_weight
from models.report_html import Texts, esc, figure_html, fmt, html_table, missing
from models.train import TrainedModel


def offer_type_text(offer_type: Any, t: Texts) -> str:
    try:
        return t(f"offer_type_{offer_type}")
    except KeyError:
        return esc(offer_type)


def score_summary(scores: pd.DataFrame, t: Texts) -> str:
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
            html_table(
                [
                    t("col_touch_tier"),
                    t("col_accounts"),
                    t("col_in_action_list"),
                    t("col_expected_expansion_mrr"),
                ],
                [
                    [
                        esc(tier),
                        fmt(int(r["accounts"]), ","),
                        fmt(int(r["listed"]), ","),
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
            html_table(
                [t("col_suppression_reason"), t("col_accounts")],
                [[esc(r), fmt(int(c), ",")] for r, c in reasons.items()],
                [False, True],
            )
        )
    if "offer_type" in scores:
        offers = scores.loc[~suppressed, "offer_type"].value_counts()
        counts = t.join(
            t("offer_count", offer_type=offer_type_text(k, t), count=f"{int(v):,}")
            for k, v in offers.items()
        )
        parts.append(f"<p>{t('offers_in_list', offers=counts)}</p>")
    return "\n".join(parts)


def top_accounts(scores: pd.DataFrame, snapshots: pd.DataFrame, top_n: int, t: Texts) -> str:
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
        who = esc(r["account_id"]) + (f"<br>{esc(name)}" if not missing(name) else "")
        owner = r.get("owner_name")
        if not missing(owner):
            who += f'<br><span class="pill">{esc(owner)}</span>'
        mrr = context["mrr"].get(r["account_id"]) if "mrr" in context else None
        reasons = "<br>".join(
            esc(r[c]) for c in ("reason_1", "reason_2", "reason_3") if not missing(r.get(c))
        )
        health = fmt(r.get("health_score"), ".0f")
        stage = r.get("loyalty_stage")
        if not missing(stage):
            try:
                health += "<br>" + t(f"loyalty_{stage}")
            except KeyError:  # a stage the phrase table does not name: as stored
                health += "<br>" + esc(stage)
        rows.append(
            [
                fmt(r.get("action_rank"), ""),
                who,
                t.money(mrr),
                fmt(r["p_expansion"], ".1%"),
                esc(r.get("next_best_offer")),
                t.money(r.get("offer_mrr")),
                t.money(r["expected_expansion_mrr"]),
                esc(r.get("touch_tier")),
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
    return html_table(
        [t(h) for h in header],
        rows,
        [True, False, True, True, False, True, True, False, True, False],
    )


def rank_by_text(params: Params, weight: float | None, t: Texts) -> str:
    """How the action list is ranked, as HTML (balanced: with its value weight)."""
    rank_by = params.action_list.rank_by
    if rank_by != "balanced":
        return t(f"rank_by_{rank_by}")
    return t("rank_by_balanced", weight=fmt(value_weight(params, weight), "g"))


_RANKING_COLUMNS = {
    "hit_rate_default": "col_hit_rate_default",
    "hit_rate_probability": "col_hit_rate_probability",
    "expansion_mrr_captured_default": "col_mrr_default",
    "expansion_mrr_captured_probability": "col_mrr_probability",
    "expected_mrr_captured_default": "col_expected_default",
    "expected_mrr_captured_probability": "col_expected_probability",
}


def ranking_section(model: TrainedModel, t: Texts) -> str:
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
    ratio = fmt(params.action_list.min_hit_rate_ratio, "g")
    s = ranking_summary(model.ranking_metrics, params, weight)
    rank_by = rank_by_text(params, weight, t)
    notes = [t("ranking_note", rank_by=rank_by, n=str(n), days=str(params.label_horizon_days))]
    if params.action_list.rank_by == "balanced" and params.action_list.value_weight == "auto":
        weights = "/".join(f"{w:g}" for w in sorted(set(params.action_list.auto_weights))[::-1])
        notes.append(
            t(
                "ranking_weight_auto",
                weight=fmt(s["value_weight"], "g"),
                weights=esc(weights),
                n=str(n),
                ratio=ratio,
            )
        )
    met = "pass" if s["hit_rate_ratio_met"] else "fail"
    verdict = (
        f'<span class="{met}">{t("ranking_met" if met == "pass" else "ranking_not_met")}</span>'
    )
    figures = {k: fmt(s[f"hit_rate_{k}_mean"], ".1%") for k in ("default", "probability")}
    share = fmt(s["hit_rate_ratio"], ".2f")
    notes.append(
        t("ranking_verdict", n=str(n), **figures, share=share, ratio=ratio, verdict=verdict)
    )
    table = ranking_table(model.ranking_metrics, f"top_{n}", mean=t.plain("row_mean"))
    rows = [
        [esc(r["cutoff"]), fmt(r["n_rows"], ",.0f")]
        + [fmt(r[c], ".1%") if c.startswith("hit") else t.money(r[c]) for c in _RANKING_COLUMNS]
        for _, r in table.iterrows()
    ]
    header = [t("col_cutoff"), t("col_list_size"), *(t(h) for h in _RANKING_COLUMNS.values())]
    html_parts = [f"<h3>{t('section_ranking')}</h3>", *(f"<p>{note}</p>" for note in notes)]
    html_parts.append(html_table(header, rows, [False, *[True] * (len(header) - 1)]))
    curve = pd.DataFrame(model.ranking_curve)
    if not curve.empty:
        latest = str(curve["cutoff"].max())
        labels = {"default": ranking_label(params, weight), "probability": "By probability"}
        uri = ranking_chart(curve.loc[curve["cutoff"] == latest], latest, labels, mark=n)
        html_parts.append(figure_html("ranking", uri, t))
    return "\n".join(html_parts)
