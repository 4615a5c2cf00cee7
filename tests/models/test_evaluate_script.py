"""scripts/evaluate.py (make evaluate): table, last-line JSON, exit codes."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from flows.registry import promote, save_model
from models.evaluate import acceptance_failures, backtest_table
from models.train import TrainedModel

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "evaluate.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("evaluate_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def registry(trained: TrainedModel, tmp_path: Path) -> Path:
    model = TrainedModel(**{**trained.__dict__, "version": None})
    version = save_model(model, tmp_path / "models", "abc123", "f" * 16, datetime.now(UTC))
    promote(tmp_path / "models", version)
    return tmp_path / "models"


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


def test_evaluate_passes_and_ends_with_json(
    script: ModuleType,
    registry: Path,
    trained: TrainedModel,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # an oracle no better than the model's own scores: the ratio bar holds
    oracle = _oracle(trained, tmp_path / "oracle.parquet", lambda r: r["p"].to_numpy())
    p = trained.params
    lenient = ["--registry", str(registry), "--oracle", str(oracle)]
    code, out = _run(script, capsys, *lenient, "--warehouse", str(tmp_path / "none.duckdb"))
    lines = out.strip().splitlines()
    record = json.loads(lines[-1])
    for key in ("auc", "oracle_auc", "baseline_auc", "ece", "top_decile_lift", "capture"):
        assert key in record
    assert record["cutoff"] == trained.latest_cutoff()
    assert record["auc"] == pytest.approx(record["oracle_auc"])
    assert "auc/oracle" in out and "baseline_auc" in out and "top_decile_lift" in out
    expected = acceptance_failures(
        record, p.acceptance.min_oracle_auc_ratio, p.acceptance.max_ece, True
    )
    assert record["failures"] == expected
    assert code == (0 if not expected else 1)
    assert record["passed"] == (code == 0)


def test_evaluate_fails_a_bar_with_exit_code_1(
    script: ModuleType,
    registry: Path,
    trained: TrainedModel,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    perfect = _oracle(trained, tmp_path / "oracle.parquet", lambda r: r["y"].astype(float))
    code, out = _run(script, capsys, "--registry", str(registry), "--oracle", str(perfect))
    record = json.loads(out.strip().splitlines()[-1])
    assert code == 1 and not record["passed"]
    assert any("x oracle 1.0000" in f for f in record["failures"])
    assert "FAIL:" in out


def test_evaluate_without_champion_or_oracle_exits_2(
    script: ModuleType,
    registry: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = _run(script, capsys, "--registry", str(tmp_path / "empty"))
    assert code == 2 and json.loads(out.strip().splitlines()[-1])["passed"] is False
    code, out = _run(
        script, capsys, "--registry", str(registry), "--oracle", str(tmp_path / "no.parquet")
    )
    assert code == 2 and "oracle" in json.loads(out.strip().splitlines()[-1])["failures"][0]


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


def test_acceptance_failures() -> None:
    row = {"auc": 0.77, "oracle_auc": 0.80, "baseline_auc": 0.75, "ece": 0.02}
    assert acceptance_failures(row, 0.95, 0.03) == []
    assert len(acceptance_failures({**row, "auc": 0.70}, 0.95, 0.03)) == 2  # oracle + baseline
    assert acceptance_failures({**row, "ece": 0.05}, 0.95, 0.03) == ["ECE 0.0500 > 0.03"]
    assert len(acceptance_failures({**row, "ece": float("nan")}, 0.95, 0.03)) == 1
    assert acceptance_failures({**row, "baseline_auc": 0.9}, 0.95, 0.03, False) == []
