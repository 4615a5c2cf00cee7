"""What a person reads, in the run's locale: `Params.localized` and the phrase tables'
`reasons:`, `offers:` and `suppression:` sections; amounts in the reporting currency."""

from __future__ import annotations

import math
import re
from datetime import date

import pandas as pd
import pytest

from models.params import Params, load_params
from models.phrasebook import load_phrasebook, phrase_file, shipped_locales
from models.reasons import phrase
from models.score import score_accounts, suppression_reasons
from models.train import TrainedModel
from tests.models.conftest import BUSINESS, fast_params, usage_columns

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
TEXT_COLUMNS = ["next_best_offer", "suppression_reason", "reason_1", "reason_2", "reason_3"]


def _say(params: Params, feature: str, value: object, currency: str = "USD", **row: object):  # type: ignore[no-untyped-def]
    return phrase(params.reasons[feature], value, dict(row), currency=currency)


def test_every_text_of_params_yaml_has_a_japanese_phrase() -> None:
    """The features, offer labels and suppression reasons of params.yaml that ja.yaml does not
    phrase (they would read in English in a ja run): none."""
    params, ja = load_params(), load_phrasebook("ja")
    assert [f for f in params.reasons if f not in ja.reasons] == []
    assert ja.offers is not None
    assert [r.reason for r in params.suppression if r.reason not in ja.suppression] == []
    # and nothing there that params.yaml does not have (a misspelt key would go unused)
    assert sorted(set(ja.reasons) - set(params.reasons)) == []
    assert sorted(set(ja.suppression) - {r.reason for r in params.suppression}) == []


def test_the_english_table_phrases_nothing_of_params_yaml() -> None:
    en = load_phrasebook("en")
    assert (en.reasons, en.offers, en.suppression) == ({}, None, {})
    params = load_params()
    assert params.localized("en") == params


def test_japanese_reasons() -> None:
    ja = load_params().localized("ja")
    assert _say(ja, "days_to_renewal", 41.0) == "更新まで41日"
    assert _say(ja, "days_to_renewal", 0.0) == "本日更新"
    assert (
        _say(ja, "per_unit_limit_utilization", 0.92) == "購入数に応じて増えるプラン上限の92%を利用"
    )
    assert _say(ja, "mrr_change_90d", -1234.4, "JPY") == "MRRが90日間で1,234円減少"
    assert _say(ja, "mrr", 98765.0, "JPY") == "MRRは98,765円"
    assert _say(ja, "mrr", 98765.0, "USD") == "MRRは$98,765"
    assert _say(ja, "urgent_tickets_open", 2.0) == "未解決の緊急問い合わせ2件"
    assert _say(ja, "is_promoter_90d", 1.0, nps_latest=10.0) == "直近90日間にNPS推奨者（10）"  # noqa: RUF001
    assert _say(ja, "is_promoter_90d", 1.0) == "直近90日間にNPS推奨者（不明）"  # noqa: RUF001
    assert _say(ja, "days_since_last_expansion", math.nan) == "契約拡大の実績なし"
    assert _say(ja, "is_monthly_term", 0.0) is None  # as in English: no when_zero


def test_localizing_changes_only_the_words() -> None:
    params = load_params()
    ja = params.localized("ja")
    for feature, template in params.reasons.items():
        other = ja.reasons[feature]
        assert (other.group, other.actionable, other.locale) == (
            template.group,
            template.actionable,
            "ja",
        )
        for key in ("when_zero", "when_missing"):
            assert (getattr(other, key) is None) == (getattr(template, key) is None), feature
    assert [r.when for r in ja.suppression] == [r.when for r in params.suppression]
    assert ja.offers.choose_by == params.offers.choose_by
    assert ja.localized("ja") == ja  # twice is once
    with pytest.raises(ValueError, match=r"reasons in \['ja'\] cannot be localized to 'en'"):
        ja.localized("en")


def test_every_japanese_phrase_formats_for_any_value(snapshots: pd.DataFrame) -> None:
    params = load_params().with_usage_features(BUSINESS, usage_columns(), "ja").localized("ja")
    row = snapshots.iloc[0].to_dict()
    for feature in params.features.all:
        template = params.reasons[feature]
        assert template.locale == "ja", feature
        for value in ["enterprise", 0.42, 0.0, -3.0, math.nan]:
            if isinstance(value, str) and feature not in params.features.categorical:
                continue
            text = phrase(template, value, row, currency="JPY")
            if text is not None:
                assert "{" not in text and "$" not in text and JAPANESE.search(text), text


def test_a_phrase_table_must_phrase_what_params_yaml_phrases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ja = load_phrasebook("ja")
    reasons = dict(ja.reasons)
    reasons["days_to_renewal"] = reasons["days_to_renewal"].model_copy(update={"when_zero": None})
    monkeypatch.setattr(
        "models.params.load_phrasebook", lambda _: ja.model_copy(update={"reasons": reasons})
    )
    with pytest.raises(ValueError, match=r"ja\.yaml: reasons\.days_to_renewal gives \['text'\]"):
        load_params().localized("ja")
    reasons["days_to_renewal"] = reasons["days_to_renewal"].model_copy(
        update={"text": "更新まで{days}日", "when_zero": "本日"}
    )
    with pytest.raises(ValueError, match=r"formats \['days'\]"):
        load_params().localized("ja")
    assert phrase_file("ja").name == "ja.yaml"


def test_offer_labels_must_format_their_own_field() -> None:
    from models.phrasebook import OfferLabels

    with pytest.raises(ValueError, match=r"offers\.upsell_units .*expected \{units\}"):
        OfferLabels(
            cross_sell="{product}",
            upsell_tier="{plan}{change}",
            upsell_units="+席",
            upsell_addon="{plan} x{units}{change}",
            limit_change="{label} {before} {after}{unit}",
            limit_unlimited="{label} {before}{unit}",
        )


def test_suppression_reasons_in_japanese() -> None:
    frame = pd.DataFrame(
        {
            "urgent_tickets_open": [1.0, 0.0, 0.0],
            "days_since_last_contraction": [10.0, None, 400.0],
            "days_since_last_activity": [30.0, 2.0, 30.0],
            "opportunities_open": [0.0, 1.0, 0.0],
            "invoices_overdue_open": [0.0, 0.0, 0.0],
        }
    )
    params = load_params()
    assert suppression_reasons(frame, params, locale="ja").tolist() == [
        "未解決の緊急問い合わせあり; 最近の契約縮小",
        "進行中の商談に対応中; 3日以内に接触済み",
        None,
    ]
    assert suppression_reasons(frame, params).iloc[0] == "open urgent ticket; recent contraction"


@pytest.fixture(scope="module")
def scored(
    trained: TrainedModel, snapshots: pd.DataFrame, as_of: date, owners: pd.Series
) -> tuple[pd.DataFrame, ...]:
    """The same model and rows scored in en/USD and in ja/JPY (the money columns read as yen)."""
    en = fast_params(load_params().with_usage_features(BUSINESS, usage_columns()))
    ja = fast_params(load_params().with_usage_features(BUSINESS, usage_columns(), "ja"))
    return (
        score_accounts(trained, snapshots, as_of, en, owners=owners),
        score_accounts(trained, snapshots, as_of, ja, owners=owners, locale="ja", currency="JPY"),
    )


def test_a_ja_jpy_run_reads_in_japanese_with_yen(scored: tuple[pd.DataFrame, ...]) -> None:
    _, ja = scored
    assert (ja["reporting_currency"] == "JPY").all()
    assert ja["next_best_offer"].str.match(r"^(クロスセル|アップセル): ").all()
    texts = [t for c in TEXT_COLUMNS for t in ja[c].dropna()]
    assert texts and all(JAPANESE.search(t) for t in texts), texts
    assert not any("$" in t for t in texts)
    assert ja["suppression_reason"].notna().any()  # the fixture has suppressed accounts


def test_the_locale_and_currency_change_only_the_words(scored: tuple[pd.DataFrame, ...]) -> None:
    en, ja = scored
    words = [*TEXT_COLUMNS, "reporting_currency"]
    pd.testing.assert_frame_equal(en.drop(columns=words), ja.drop(columns=words))
    assert (en["reporting_currency"] == "USD").all()
    for column in TEXT_COLUMNS:
        assert (en[column].isna() == ja[column].isna()).all(), column


def test_every_shipped_locale_localizes_params_yaml() -> None:
    for locale in shipped_locales():
        load_params().localized(locale)
