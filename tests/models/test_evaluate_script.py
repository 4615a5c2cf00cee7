"""scripts/evaluate.py (make evaluate): table, intervals, last-line JSON, exit codes, --as-of,
and one verdict: the pipeline's promotion, make evaluate and the model report agree."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType

import duckdb
import numpy as np
import pandas as pd
import pytest

from flows.registry import promote, save_model
from models.acceptance import assess
from models.evaluate import backtest_table
from models.features import prepare_features
from models.params import Params
from models.promotion import decide_promotion
from models.ranking import ranking_summary
from models.report import render_report
from models.score import score_accounts
from models.train import TrainedModel

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "evaluate.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("evaluate_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _quick(params: Params, **acceptance: object) -> Params:
    """Fewer resamples (tests), and any other acceptance settings."""
    return params.model_copy(
        update={"acceptance": params.acceptance.model_copy(update={"resamples": 200, **acceptance})}
    )


def _registry(model: TrainedModel, root: Path) -> Path:
    version = save_model(
        TrainedModel(**{**model.__dict__, "version": None}),
        root / "models",
        "abc123",
        "f" * 16,
        datetime.now(UTC),
    )
    promote(root / "models", version)
    return root / "models"


@pytest.fixture()
def model(trained: TrainedModel) -> TrainedModel:
    return TrainedModel(**{**trained.__dict__, "params": _quick(trained.params)})


@pytest.fixture()
def registry(model: TrainedModel, tmp_path: Path) -> Path:
    return _registry(model, tmp_path)


def _oracle(trained: TrainedModel, path: Path, p: Callable[[pd.DataFrame], np.ndarray]) -> Path:
    preds = trained.backtest_predictions
    assert preds is not None
    rows = preds[(preds["target"] == "expansion") & (preds["model"] == "lightgbm")]
    frame = pd.DataFrame(
        {
            "account_id": rows["account_id"],
            "snapshot_date": pd.to_datetime(rows["cutoff"]),
            "p_expansion_90d": p(rows),
            "label_expansion_90d": rows["y"].astype(bool),
        }
    )
    frame.to_parquet(path)
    return path


def _run(script: ModuleType, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = script.main(list(args))
    return code, capsys.readouterr().out


def test_evaluate_prints_intervals_and_ends_with_json(
    script: ModuleType,
    registry: Path,
    model: TrainedModel,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # an oracle no better than the model's own scores: the ratio bar holds
    oracle = _oracle(model, tmp_path / "oracle.parquet", lambda r: r["p"].to_numpy())
    args = ["--registry", str(registry), "--oracle", str(oracle)]
    code, out = _run(script, capsys, *args, "--warehouse", str(tmp_path / "none.duckdb"))
    record = json.loads(out.strip().splitlines()[-1])
    expected = assess(model.backtest_predictions, model.params, oracle=pd.read_parquet(oracle))
    assert record["cutoffs"] == list(expected.cutoffs)
    assert record["roc_auc"]["value"] == pytest.approx(expected.figures["roc_auc"].value)
    assert record["roc_auc"]["low"] == pytest.approx(expected.figures["roc_auc"].low)
    assert [(b["name"], b["status"]) for b in record["bars"]] == list(expected.verdicts().items())
    assert {b["name"] for b in record["bars"]} >= {"roc_auc", "brier", "calibration", "oracle"}
    assert record["passed"] == expected.passed and code == (0 if expected.passed else 1)
    assert len(record["per_cutoff"]) == len(expected.cutoffs)
    # the action list's figures: the ranking module's summary of the model's own records
    summary = ranking_summary(model.ranking_metrics, model.params, model.action_value_weight)
    assert record["action_list"]["hit_rate_ratio"] == pytest.approx(summary["hit_rate_ratio"])
    assert record["action_list"]["hit_rate_default_mean"] == pytest.approx(
        summary["hit_rate_default_mean"]
    )
    assert "first 100 accounts" in out
    # the per-cut-off table, then every pooled figure with its interval beside it
    assert "auc/oracle" in out and "baseline_auc" in out and "top_decile_lift" in out
    auc = expected.figures["roc_auc"]
    assert f"ROC AUC            {auc.value:.3f} [{auc.low:.3f}, {auc.high:.3f}]" in out


def test_evaluate_fails_a_bar_on_evidence_with_exit_code_1(
    script: ModuleType,
    registry: Path,
    model: TrainedModel,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    perfect = _oracle(model, tmp_path / "oracle.parquet", lambda r: r["y"].astype(float))
    code, out = _run(script, capsys, "--registry", str(registry), "--oracle", str(perfect))
    record = json.loads(out.strip().splitlines()[-1])
    assert code == 1 and not record["passed"]
    assert any(f.startswith("ROC AUC >= 0.95 x oracle's") for f in record["failures"])
    assert "FAIL: 1 bar(s) failed" in out


def test_evaluate_without_an_oracle_judges_baseline_and_calibration(
    script: ModuleType,
    registry: Path,
    model: TrainedModel,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = _run(
        script, capsys, "--registry", str(registry), "--oracle", str(tmp_path / "no.parquet")
    )
    record = json.loads(out.strip().splitlines()[-1])
    assert record["oracle"] is False and code in (0, 1)
    assert [b["name"] for b in record["bars"]] == ["roc_auc", "brier", "calibration", "baseline"]
    assert "no oracle" in out and "oracle" not in json.dumps(record["per_cutoff"])
    assert code == (0 if record["passed"] else 1)


def test_evaluate_without_champion_exits_2(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(script, capsys, "--registry", str(tmp_path / "empty"))
    record = json.loads(out.strip().splitlines()[-1])
    assert code == 2 and record["passed"] is False and "no champion" in record["failures"][0]


def test_action_list_figures_at_100(
    script: ModuleType, model: TrainedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    """The figures at N = action_list.hit_rate_at, averaged over the cut-offs (the ranking
    module's summary); a model without ranking figures has none."""
    bare = TrainedModel(**model.__dict__)
    bare.ranking_metrics = []
    assert script.action_list_figures(bare, model.params) is None
    records = [
        {
            "cutoff": cutoff,
            "ranking": ranking,
            "cut": cut,
            "n_contacted": n,
            "expanders": hits,
            "hit_rate": hits / n,
            "expansion_mrr_captured": 10.0 * hits,
            "expected_mrr_captured": 8.0 * hits,
            "n_rows": 800,
        }
        for cutoff, base in (("2025-09-30", 40), ("2025-10-31", 50))
        for ranking, hits in (("default", base), ("probability", base + 10))
        for cut, n in (("top_100", 100), ("low_touch", 250))
    ]
    ranked = TrainedModel(**model.__dict__)
    ranked.ranking_metrics = records
    figures = script.action_list_figures(ranked, model.params)
    assert figures["list_at"] == 100 and figures["cutoffs"] == 2
    assert figures["hit_rate_default_mean"] == pytest.approx(0.45)
    assert figures["hit_rate_probability_mean"] == pytest.approx(0.55)
    assert figures["expansion_mrr_captured_default_mean"] == pytest.approx(450.0)
    assert figures["hit_rate_ratio"] == pytest.approx(0.45 / 0.55)
    assert figures["hit_rate_ratio_met"] is False  # 0.82 < 0.9
    out = capsys.readouterr().out
    assert "2025-09-30" in out and "40.0%" in out and "NOT met" in out


def _scored_warehouse(model: TrainedModel, snapshots: pd.DataFrame, day: date, path: Path) -> Path:
    """A warehouse with marts.account_features and the model's scores of `day` in
    scores.account_score_history (action_rank: by p_expansion, the best first)."""
    at = snapshots[pd.to_datetime(snapshots["snapshot_date"]) == pd.Timestamp(day)]
    X, _ = prepare_features(at, model.params, model.categories)
    probs = model.predict_proba(X)
    scores = pd.DataFrame(
        {
            "account_id": at["account_id"].to_numpy(),
            "as_of": day,
            **{c: probs[c].to_numpy() for c in probs.columns},
            "action_rank": probs["p_expansion"].rank(ascending=False, method="first").to_numpy(),
            "model_version": model.version,
        }
    )
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute("create schema scores")
        con.register("frame", snapshots)
        con.execute("create table marts.account_features as select * from frame")
        con.register("scored", scores)
        con.execute("create table scores.account_score_history as select * from scored")
    return path


def test_as_of_evaluates_the_scores_of_a_date_on_what_happened_after(
    script: ModuleType,
    registry: Path,
    model: TrainedModel,
    snapshots: pd.DataFrame,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flows.registry import champion_version, load_model

    saved = load_model(registry, champion_version(registry) or "")
    warehouse = _scored_warehouse(saved, snapshots, date(2025, 10, 31), tmp_path / "w.duckdb")
    base = ["--registry", str(registry), "--warehouse", str(warehouse)]
    code, out = _run(script, capsys, *base, "--as-of", "2025-10-31")
    record = json.loads(out.strip().splitlines()[-1])
    assert record["mode"] == "as_of" and record["model_version"] == saved.version
    assert record["n"] == 30 and record["cutoffs"] == ["2025-10-31"]
    at = snapshots[pd.to_datetime(snapshots["snapshot_date"]) == "2025-10-31"]
    y = at["label_expansion"].astype(bool).to_numpy()
    assert record["n_pos"] == int(y.sum())
    for name in ("roc_auc", "brier", "ece"):
        assert record[name]["low"] <= record[name]["value"] <= record[name]["high"]
    # fewer than 100 accounts: the whole list, whose hit rate is the base rate
    assert record["first_100"]["action_rank"]["n"] == 30
    assert record["first_100"]["action_rank"]["value"] == pytest.approx(y.mean())
    assert "first 30 by action_rank: hit rate" in out
    assert code == (0 if record["passed"] else 1)
    # labels not complete yet (2025-12-31 + 90 days is after the data), or nothing scored
    code, out = _run(script, capsys, *base, "--as-of", "2025-12-31")
    assert code == 2 and "no scores at 2025-12-31" in out
    warehouse = _scored_warehouse(saved, snapshots, date(2025, 12, 31), tmp_path / "x.duckdb")
    code, out = _run(
        script, capsys, "--registry", str(registry), "--warehouse", str(warehouse),
        "--as-of", "2025-12-31",
    )  # fmt: skip
    assert code == 2 and "not complete" in json.loads(out.strip().splitlines()[-1])["failures"][0]


def test_promotion_evaluate_and_report_agree_on_the_same_model(
    script: ModuleType,
    trained: TrainedModel,
    snapshots: pd.DataFrame,
    as_of: date,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One model, one verdict per bar, whoever asks: the pipeline's promotion
    (flows/modelling/train.py calls decide_promotion), make evaluate and the model report."""
    figures = assess(trained.backtest_predictions, trained.params).figures
    auc, brier = figures["roc_auc"], figures["brier"]
    # bars set so that the verdicts differ: ROC AUC at its own point estimate (not shown), a
    # Brier score below the whole interval (failed; an ECE bar cannot be set so: its interval
    # is floored at 0), ECE <= 0.5 (met)
    params = _quick(trained.params, max_ece=0.5)
    quality = {"min_roc_auc": round(auc.value, 3), "max_brier": brier.low / 2}
    params = params.model_copy(update={"quality": params.quality.model_copy(update=quality)})
    model = TrainedModel(**{**trained.__dict__, "params": params})
    registry = _registry(model, tmp_path)
    decision = decide_promotion(model, None, snapshots, params)
    promotion = decision.assessment.verdicts()
    assert not decision.promote
    assert set(promotion.values()) >= {"met", "not shown", "failed"}

    code, out = _run(script, capsys, "--registry", str(registry), "--oracle", str(tmp_path / "x"))
    evaluate = {b["name"]: b["status"] for b in json.loads(out.strip().splitlines()[-1])["bars"]}
    assert code == 1

    scores = score_accounts(model, snapshots, as_of, params)
    page = render_report(model, snapshots, scores)
    report = dict(re.findall(r'data-bar="([a-z_]+)" data-status="([a-z ]+)"', page))

    assert promotion == evaluate == report


def test_backtest_table_matches_stored_metrics(trained: TrainedModel) -> None:
    preds = trained.backtest_predictions
    assert preds is not None
    table = backtest_table(preds, "expansion")
    assert table["cutoff"].tolist() == sorted({r["cutoff"] for r in trained.metrics})
    for _, row in table.iterrows():
        stored = trained.metrics_at(row["cutoff"])
        base = trained.metrics_at(row["cutoff"], model="logistic")
        assert stored is not None and base is not None
        assert row["auc"] == pytest.approx(stored["roc_auc"])
        assert row["ece"] == pytest.approx(stored["ece"])
        assert row["top_decile_lift"] == pytest.approx(stored["lift_top_decile"])
        assert row["baseline_auc"] == pytest.approx(base["roc_auc"])
    assert table["oracle_auc"].isna().all()
