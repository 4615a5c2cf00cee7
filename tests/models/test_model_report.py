"""The model report: one self-contained offline HTML page with its charts."""

from __future__ import annotations

import base64
import html
import json
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from flows.files import JsonFileCache
from models.params import Params, load_params
from models.phrasebook import fields, load_phrasebook, shipped_locales
from models.report import render_report
from models.score import score_accounts
from models.train import TrainedModel
from tests.models.conftest import BUSINESS, fast_params, usage_columns

CHARTS = {"roc", "calibration", "gain", "auc-by-cutoff", "importance", "distribution", "ranking"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scores(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params, as_of: date, owners: pd.Series
) -> pd.DataFrame:
    out = score_accounts(trained, snapshots, as_of, params, owners=owners)
    return out.assign(owner_name=out["account_id"].map(owners), account_name="Acme <Corp>")


@pytest.fixture(scope="module")
def oracle(snapshots: pd.DataFrame, true_probabilities) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """The planted probabilities in the oracle file's layout."""
    p_up, p_cross = true_probabilities(snapshots)
    return pd.DataFrame(
        {
            "account_id": snapshots["account_id"],
            "snapshot_date": pd.to_datetime(snapshots["snapshot_date"]),
            "p_expansion_90d": 1 - (1 - p_up) * (1 - p_cross),
        }
    )


@pytest.fixture(scope="module")
def page(
    trained: TrainedModel, snapshots: pd.DataFrame, scores: pd.DataFrame, oracle: pd.DataFrame
) -> str:
    return render_report(trained, snapshots, scores, oracle)


def test_report_is_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    # no asset or link leaves the file: every src/href is a data URI or an in-page anchor
    targets = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page, flags=re.I)
    assert targets
    assert all(t.startswith(("data:", "#")) for t in targets), targets
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", page, flags=re.I)
    assert not re.search(r"url\(|@import|<link\b|<script\b|<iframe\b", page, flags=re.I)
    assert "<style>" in page  # inline CSS


def test_report_contains_the_charts(page: str) -> None:
    found = dict(
        re.findall(
            r'data-chart="([a-z-]+)"(?: class="wide")?><img src="data:image/png;base64,([^"]+)"',
            page,
        )
    )
    assert set(found) == CHARTS
    for chart, data in found.items():
        png = base64.b64decode(data, validate=True)
        assert png.startswith(PNG_MAGIC), chart
        assert len(png) > 5000, chart  # an actual picture, not an empty canvas


def test_report_contents(
    page: str, trained: TrainedModel, scores: pd.DataFrame, snapshots: pd.DataFrame
) -> None:
    assert "Model card" in page and "Backtest" in page and "Top accounts" in page
    assert trained.training_window_end.isoformat() in page
    for cutoff in {r["cutoff"] for r in trained.metrics}:
        assert cutoff in page
    assert "Oracle AUC" in page and "Logistic AUC" in page
    top = scores[scores["action_rank"] == 1].iloc[0]
    assert str(top["account_id"]) in page
    assert top["next_best_offer"] in page
    assert "Acme &lt;Corp&gt;" in page and "<Corp>" not in page  # escaped
    assert "seats" in page or "cross-sell" in page


def test_report_without_oracle_or_predictions(
    trained: TrainedModel, snapshots: pd.DataFrame, scores: pd.DataFrame
) -> None:
    page = render_report(trained, snapshots, scores)
    assert "Oracle AUC" not in page
    assert 'data-chart="roc"' in page
    legacy = TrainedModel(
        **{**trained.__dict__, "backtest_predictions": None, "ranking_metrics": []}
    )
    page = render_report(legacy, snapshots, scores)
    assert "No backtest predictions" in page
    assert set(re.findall(r'data-chart="([a-z-]+)"', page)) == {"importance", "distribution"}


def test_report_bars_verdict(
    trained: TrainedModel, snapshots: pd.DataFrame, scores: pd.DataFrame
) -> None:
    """Against an oracle that ranks perfectly, the 0.95 x oracle bar fails on evidence."""
    preds = trained.backtest_predictions
    assert preds is not None
    rows = preds[(preds["target"] == "expansion") & (preds["model"] == "lightgbm")]
    oracle = pd.DataFrame(
        {
            "account_id": rows["account_id"],
            "snapshot_date": pd.to_datetime(rows["cutoff"]),
            "p_expansion_90d": rows["y"].astype(float),
        }
    )
    page = render_report(trained, snapshots, scores, oracle)
    assert "Bars on the" in page and "bootstrap resamples within each cut-off" in page
    assert 'data-bar="oracle" data-status="failed"' in page
    assert '<span class="fail">1 bar(s) failed</span>' in page
    assert "All cut-offs" in page  # the pooled row of the backtest table, with intervals


def test_model_charts_are_rendered_once_per_version(
    trained: TrainedModel,
    snapshots: pd.DataFrame,
    scores: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import models.report as report

    model = TrainedModel(**{**trained.__dict__, "version": "v9"})
    cache = JsonFileCache(tmp_path)
    first = render_report(model, snapshots, scores, chart_cache=cache)
    # the charts, and the backtest sections in this locale and currency
    assert len(list(tmp_path.glob(f"{model.version}-*.json"))) == 2

    def fail(*args: object, **kwargs: object) -> dict[str, str]:
        raise AssertionError("the model's charts were rendered again")

    def judged_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("the backtest was assessed again (a bootstrap: seconds)")

    monkeypatch.setattr(report, "model_charts", fail)
    monkeypatch.setattr(report, "assess", judged_again)
    assert render_report(model, snapshots, scores, chart_cache=cache) == first
    with pytest.raises(AssertionError, match="again"):  # another version: made again
        other = TrainedModel(**{**trained.__dict__, "version": "v10"})
        render_report(other, snapshots, scores, chart_cache=cache)


def test_the_chart_cache_is_any_mapping_and_a_bad_entry_is_rendered_again(
    trained: TrainedModel, snapshots: pd.DataFrame, scores: pd.DataFrame
) -> None:
    model = TrainedModel(**{**trained.__dict__, "version": "v9"})
    cache: dict[str, str] = {}
    first = render_report(model, snapshots, scores, chart_cache=cache)
    [key] = [k for k in cache if not k.endswith("-sections-en-USD")]
    assert key.startswith("v9-") and json.loads(cache[key])["roc"].startswith("data:image/png")
    cache[key] = "not json"
    assert render_report(model, snapshots, scores, chart_cache=cache) == first
    assert json.loads(cache[key])["roc"].startswith("data:image/png")


@pytest.fixture(scope="module")
def ja_scores(
    trained: TrainedModel, snapshots: pd.DataFrame, as_of: date, owners: pd.Series
) -> pd.DataFrame:
    """Scores of a ja run reporting in JPY (the test business's usage reasons in ja too)."""
    params = fast_params(load_params().with_usage_features(BUSINESS, usage_columns(), "ja"))
    out = score_accounts(
        trained, snapshots, as_of, params, owners=owners, locale="ja", currency="JPY"
    )
    return out.assign(owner_name=out["account_id"].map(owners), account_name="Acme <Corp>")


def _visible(page: str) -> str:
    """The page's text a person reads (no tags, styles or images)."""
    body = re.sub(r"(?s)<style>.*?</style>|<[^>]+>", " ", page)
    return html.unescape(body)


def test_a_ja_jpy_report_reads_in_japanese_with_yen(
    trained: TrainedModel, snapshots: pd.DataFrame, ja_scores: pd.DataFrame, oracle: pd.DataFrame
) -> None:
    page = render_report(trained, snapshots, ja_scores, oracle, locale="ja", currency="JPY")
    text = _visible(page)
    assert '<html lang="ja">' in page
    for heading in ("モデルカード", "バックテスト", "グラフ", "アプローチすべき上位アカウント"):
        assert f">{heading}</h2>" in page, heading
    for label in ("学習期間", "順位", "オファーMRR", "期待MRR", "理由", "ブートストラップ"):
        assert label in text, label
    for english in ("Model card", "Top accounts", "Offer MRR", "Training window", "Rank"):
        assert english not in text, english
    assert re.search(r"\d円", text) and "$" not in text and "¥" not in text
    top = ja_scores[ja_scores["action_rank"] == 1].iloc[0]
    assert top["next_best_offer"].startswith(("クロスセル: ", "アップセル: "))
    assert html.escape(top["next_best_offer"]) in page
    assert html.escape(top["reason_1"]) in page and re.search(r"[ぁ-んァ-ン一-龥]", top["reason_1"])
    for cutoff in {r["cutoff"] for r in trained.metrics}:
        assert cutoff in page
    assert set(re.findall(r'data-chart="([a-z-]+)"', page)) == CHARTS
    assert "ROC曲線。" in text  # chart titles and captions follow the locale


def test_an_english_report_shows_dollars(page: str) -> None:
    text = _visible(page)
    assert re.search(r"\$\d", text) and "円" not in text
    assert '<html lang="en">' in page


def test_every_report_text_is_in_every_shipped_locale() -> None:
    """Each locale phrases every text of the English table, with the same {fields}."""
    english = load_phrasebook("en").report
    for locale in shipped_locales():
        table = load_phrasebook(locale).report
        assert sorted(set(english) - set(table)) == [], locale
        assert sorted(set(table) - set(english)) == [], locale
        for key, text in table.items():
            assert fields(text) == fields(english[key]), (locale, key)


def test_the_charts_are_drawn_once_for_every_locale(
    trained: TrainedModel,
    snapshots: pd.DataFrame,
    scores: pd.DataFrame,
    ja_scores: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import models.report as report

    model = TrainedModel(**{**trained.__dict__, "version": "v9"})
    cache: dict[str, str] = {}
    render_report(model, snapshots, scores, chart_cache=cache)

    def fail(*args: object) -> dict[str, str]:
        raise AssertionError("the model's charts were drawn again")

    monkeypatch.setattr(report, "model_charts", fail)
    page = render_report(model, snapshots, ja_scores, chart_cache=cache, locale="ja")
    assert "特徴量の重要度" in page


def test_charts_are_shown_at_a_readable_size_in_a_browser(page: str, tmp_path: Path) -> None:
    """In Chromium at 1400 pixels, no chart is shrunk below 80% of its drawn size, so its
    smallest text (10 pt at models.charts.DPI) is at least 12 pixels high on screen; the
    two-panel charts take a whole row. The screenshot shows the page renders."""
    from models.charts import DPI, TEXT_PT, WIDE
    from tests.browser import chart_widths, screenshot

    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    widths = chart_widths(path, tmp_path)
    assert {w["chart"] for w in widths} == CHARTS - {"ranking"} or {
        w["chart"] for w in widths
    } == CHARTS
    smallest_pt = min(TEXT_PT.values())
    for w in widths:
        scale = w["shown"] / w["natural"]
        text_px = smallest_pt / 72 * DPI * scale
        assert scale >= 0.8 and text_px >= 12, (widths, w, round(text_px, 1))
    wide = [w for w in widths if w["chart"] in WIDE]
    assert wide and all(w["shown"] > 800 for w in wide), wide
    png = screenshot(path, tmp_path / "report.png")
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 50_000
