"""Usage features `<metric>__<stat>`: found by name, phrased from the label, unit and locale."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from models.business import Business, UsageMetric
from models.params import DEFAULT_PARAMS_PATH, Params, load_params
from models.phrasebook import VALUE_FIELDS, load_phrasebook, shipped_locales
from models.reasons import _value_fields, phrase, reasons_from_contributions
from models.usage_features import usage_features, usage_reason, usage_reasons

PROJECT = Path(__file__).resolve().parents[2]
# The stats per aggregation dbt builds (spec: the `usage_feature_stats()` macro), plus
# `utilization` for metrics with a limit_period.
STATS = {
    "sum": ["7d", "30d", "90d", "trend_28d", "active_days_30d", "days_since_use"],
    "distinct": ["7d", "30d", "90d", "trend_28d", "days_since_use"],
    "level": ["latest", "30d", "trend_28d"],
}

BUSINESS = Business(
    usage_metrics=[
        UsageMetric(name="api", label="API", aggregation="sum"),  # a prefix of the next one
        UsageMetric(
            name="api_calls",
            label={"en": "API calls", "ja": "API呼び出し"},
            unit={"en": "calls", "ja": "回"},
            aggregation="sum",
            limit_period="month",
        ),
        UsageMetric(
            name="storage",
            label={"en": "storage", "ja": "ストレージ"},
            unit="GB",
            aggregation="level",
            limit_period="held",
        ),
        UsageMetric(
            name="users",
            label={"en": "active users", "ja": "アクティブユーザー"},
            unit={"en": "users", "ja": "人"},
            aggregation="distinct",
            limit_period="day",
        ),
    ]
)


def _columns(business: Business = BUSINESS) -> list[str]:
    return [
        f"{m.name}__{stat}"
        for m in business.usage_metrics
        for stat in [*STATS[m.aggregation], *(["utilization"] if m.limit_period else [])]
    ]


def _say(column: str, value: object, locale: str = "en", **row: object) -> str | None:
    return phrase(usage_reasons(BUSINESS, [column], locale)[column], value, row)


def test_columns_are_found_by_declared_metric_and_double_underscore() -> None:
    columns = [
        "mrr",
        "api_calls__30d",
        "api__30d",
        "api__calls_30d",  # metric api, stat calls_30d (phrased later, or an error)
        "undeclared__30d",
        "api",
        "api__",
        "api_calls_30d",
        "storage__latest",
    ]
    found = [(f.column, f.metric.name, f.stat, f.group) for f in usage_features(BUSINESS, columns)]
    assert found == [
        ("api_calls__30d", "api_calls", "30d", "usage_api_calls"),
        ("api__30d", "api", "30d", "usage_api"),
        ("api__calls_30d", "api", "calls_30d", "usage_api"),
        ("storage__latest", "storage", "latest", "usage_storage"),
    ]


def test_every_stat_of_every_aggregation_is_phrased_in_every_locale() -> None:
    assert {"en", "ja"} <= set(shipped_locales())
    columns = _columns()
    for locale in shipped_locales():
        reasons = usage_reasons(BUSINESS, columns, locale)
        assert list(reasons) == columns
        for column, template in reasons.items():
            assert template.group == "usage_" + column.split("__")[0]
            assert template.locale == locale and template.actionable
            for value in (0.42, 1234.5, 0.0, -0.3, math.nan):
                text = phrase(template, value, {})
                if text is not None:
                    assert "{" not in text and "nan" not in text.lower(), (locale, column, text)
                    assert BUSINESS.metric(column.split("__")[0]).label_in(locale) in text


def test_shipped_tables_phrase_the_stats_dbt_builds() -> None:
    en = load_phrasebook("en").usage
    for aggregation, stats in STATS.items():
        assert set(en.stats_of(aggregation)) == {*stats, "utilization"}, aggregation
    for locale in shipped_locales():
        table = load_phrasebook(locale).usage
        for aggregation in STATS:
            assert table.stats_of(aggregation) == en.stats_of(aggregation), locale


def test_phrase_tables_follow_the_dbt_macro_when_present() -> None:
    """The stats listed in dbt's `usage_feature_stats()` (the one list) all have phrases."""
    macro = PROJECT / "dbt_project" / "macros" / "usage_features.sql"
    text = macro.read_text(encoding="utf-8") if macro.is_file() else ""
    if "usage_feature_stats" not in text:
        pytest.skip("no usage_feature_stats() macro in this checkout")
    en = load_phrasebook("en").usage
    for aggregation in STATS:
        block = re.search(rf"'{aggregation}':\s*\[(.*?)\]", text, re.S)
        assert block, aggregation
        stats = re.findall(r"\(\s*'([a-z0-9_]+)'", block.group(1))
        assert stats and set(stats) <= set(en.stats_of(aggregation)), (aggregation, stats)


def test_english_phrases() -> None:
    assert _say("api_calls__30d", 12345.0) == "API calls: 12,345 calls in 30 days"
    assert _say("api_calls__utilization", 0.92) == "API calls at 92% of plan limit"
    assert _say("api_calls__trend_28d", -0.23) == "API calls down 23% over 4 weeks"
    assert _say("api_calls__active_days_30d", 21.0) == "API calls on 21 of the last 30 days"
    assert _say("api_calls__days_since_use", 1.0) == "API calls: last used 1 day ago"
    assert _say("api_calls__days_since_use", 0.0) == "API calls: used today"
    assert _say("api_calls__days_since_use", math.nan) is None
    assert _say("api__7d", 40.0) == "API: 40 in 7 days"  # no unit: no separator either
    assert _say("storage__latest", 412.0) == "storage: 412 GB (latest)"
    assert _say("storage__30d", 40.5) == "storage: 40.5 GB (30-day average)"
    assert _say("users__30d", 23.4) == "active users: 23.4 users a day (30-day average)"
    assert _say("users__utilization", 0.0) is None


def test_japanese_phrases() -> None:
    assert _say("api_calls__30d", 12345.0, "ja") == "API呼び出し 30日間で12,345回"
    assert _say("storage__utilization", 0.92, "ja") == "ストレージがプラン上限の92%"
    assert _say("storage__latest", 412.0, "ja") == "ストレージ 現在412GB"
    # full-width parentheses are Japanese typography
    users = "アクティブユーザー 1日平均23.4人（30日間）"  # noqa: RUF001
    assert _say("users__30d", 23.4, "ja") == users
    assert _say("api_calls__trend_28d", 0.23, "ja") == "API呼び出し 4週間で23%増加"
    assert _say("api_calls__trend_28d", -0.05, "ja") == "API呼び出し 4週間で5%減少"
    assert _say("users__days_since_use", 2.0, "ja") == "アクティブユーザー 最終利用2日前"
    assert _say("users__days_since_use", 0.0, "ja") == "アクティブユーザー 本日利用"
    assert _say("api__7d", 40.0, "ja") == "API 7日間で40"  # a text for every locale


def test_braces_in_labels_and_units_print_as_written() -> None:
    business = Business(
        usage_metrics=[
            UsageMetric(name="widgets", label="{beta} widgets", unit="{w}", aggregation="sum")
        ]
    )
    template = usage_reasons(business, ["widgets__7d"])["widgets__7d"]
    assert phrase(template, 3.0, {"beta": "no"}) == "{beta} widgets: 3 {w} in 7 days"


def test_a_stat_without_a_phrase_names_the_column_and_the_table() -> None:
    (feature,) = usage_features(BUSINESS, ["storage__7d"])  # level metrics have no 7d total
    with pytest.raises(ValueError, match=r"(?s)storage__7d.*'7d'.*level.*phrases/en\.yaml"):
        usage_reason(feature)
    with pytest.raises(ValueError, match=r"calls_30d"):
        usage_reasons(BUSINESS, ["api__calls_30d"])


def test_an_unknown_locale_names_the_missing_table() -> None:
    with pytest.raises(ValueError, match=r"(?s)'xx'.*phrases/xx\.yaml.*shipped: .*en"):
        usage_reasons(BUSINESS, ["api__7d"], "xx")
    with pytest.raises(ValueError, match="language code"):
        load_phrasebook("../params")


def test_value_fields_are_the_documented_ones() -> None:
    for locale in shipped_locales():
        assert tuple(_value_fields(locale, "USD")) == VALUE_FIELDS


def test_with_usage_features_appends_numeric_features_with_reasons() -> None:
    params = load_params()
    columns = ["account_id", "api_calls__30d", "tenure_days", "storage__utilization"]
    out = params.with_usage_features(BUSINESS, columns, locale="ja")
    assert out.features.numeric == [
        *params.features.numeric,
        "api_calls__30d",
        "storage__utilization",
    ]
    assert out.features.categorical == params.features.categorical
    assert out.reasons["storage__utilization"].text == "ストレージがプラン上限の{pct}"
    assert out.reasons["tenure_days"] == params.reasons["tenure_days"]
    assert out.metric_texts["users"].model_dump() == {"label": "アクティブユーザー", "unit": "人"}
    none = params.with_usage_features(BUSINESS, ["tenure_days", "undeclared__7d"])
    assert (none.features, none.reasons) == (params.features, params.reasons)
    assert none.metric_texts["users"].label == "active users"  # what offers print


def test_with_usage_features_keeps_what_params_yaml_lists() -> None:
    raw = yaml.safe_load(DEFAULT_PARAMS_PATH.read_text(encoding="utf-8"))
    raw["features"]["numeric"].append("api_calls__30d")
    raw["reasons"]["api_calls__30d"] = {"group": "api_quota", "text": "{int} calls this month"}
    params = Params.model_validate(raw)
    out = params.with_usage_features(BUSINESS, ["api_calls__7d", "api_calls__30d"])
    assert out.features.numeric.count("api_calls__30d") == 1
    assert out.features.numeric[-2:] == ["api_calls__30d", "api_calls__7d"]
    assert out.reasons["api_calls__30d"].text == "{int} calls this month"
    assert out.reasons["api_calls__7d"].text == "API calls: {int} calls in 7 days"


def test_a_japanese_reason_end_to_end() -> None:
    """Usage reasons built in ja read in Japanese (words included) through the reason picker;
    the English templates of params.yaml keep their English words."""
    columns = ["api_calls__trend_28d", "storage__utilization", "users__30d"]
    params = load_params().with_usage_features(BUSINESS, columns, locale="ja")
    features = [*columns, "mrr_change_90d", "is_promoter_90d"]
    X = pd.DataFrame(
        {
            "api_calls__trend_28d": [0.23, -0.4],
            "storage__utilization": [0.92, 0.5],
            "users__30d": [12.0, 3.0],
            "mrr_change_90d": [-1234.4, 50.0],
            "is_promoter_90d": [1.0, 1.0],
        }
    )
    snapshots = pd.DataFrame({"nps_latest": [math.nan, 9.0]}, index=X.index)
    contrib = np.array(
        [
            [0.5, 0.4, 0.0, 0.3, 0.2],
            [0.5, 0.0, 0.1, 0.0, 0.0],
        ]
    )
    out = reasons_from_contributions(contrib, X[features], snapshots, params.reasons, n=3)
    assert out.iloc[0, :3].tolist() == [
        "API呼び出し 4週間で23%増加",
        "ストレージがプラン上限の92%",
        "MRR down $1,234 in 90 days",
    ]
    assert out.iloc[0]["reason_codes"] == "api_calls__trend_28d,storage__utilization,mrr_change_90d"
    assert out.iloc[1, :2].tolist() == [
        "API呼び出し 4週間で40%減少",
        "アクティブユーザー 1日平均3人（30日間）",  # noqa: RUF001
    ]
    # a missing snapshot value prints in the template's language
    english = phrase(params.reasons["is_promoter_90d"], 1.0, {})
    assert english == "NPS promoter (unknown) in the last 90 days"
    ja = params.reasons["is_promoter_90d"].model_copy(
        update={"locale": "ja", "text": "NPS ({nps_latest:.0f})"}
    )
    assert phrase(ja, 1.0, {}) == "NPS (不明)"


def test_params_reject_a_template_in_a_locale_without_a_table() -> None:
    raw = yaml.safe_load(DEFAULT_PARAMS_PATH.read_text(encoding="utf-8"))
    raw["reasons"]["tenure_days"]["locale"] = "xx"
    with pytest.raises(ValueError, match=r"phrases/xx\.yaml"):
        Params.model_validate(raw)
