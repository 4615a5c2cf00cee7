"""`expansion explain ACCOUNT_ID`: any account's score, offer and reasons from the champion."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.errors import EXIT_BAD_INPUT
from flows.modelling import explain
from flows.registry import promote, save_model
from models.params import Params, load_params
from models.score import score_accounts
from models.train import TrainedModel, train_model
from tests.models.conftest import AS_OF, BUSINESS, fast_params, synthetic_snapshots, usage_columns


@pytest.fixture(scope="module")
def params() -> Params:
    return fast_params(load_params().with_usage_features(BUSINESS, usage_columns()))


@pytest.fixture(scope="module")
def snapshots() -> pd.DataFrame:
    frame = synthetic_snapshots()
    at = pd.to_datetime(frame["snapshot_date"]) == pd.Timestamp(AS_OF)
    frame.loc[at & frame["account_id"].eq("A0005"), "is_active"] = False
    return frame


@pytest.fixture(scope="module")
def model(snapshots: pd.DataFrame, params: Params) -> TrainedModel:
    return train_model(snapshots, params, backtest=False)


@pytest.fixture
def home(
    tmp_path: Path,
    snapshots: pd.DataFrame,
    model: TrainedModel,
    params: Params,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A project home with the warehouse's features mart, a champion and the scores of
    AS_OF for all accounts but A0003."""
    home = tmp_path / "state"
    (home / "models").mkdir(parents=True)
    version = save_model(model, home / "models", "abc", "fp", datetime(2026, 2, 1, tzinfo=UTC))
    promote(home / "models", version)
    scores = score_accounts(model, snapshots, AS_OF, params, reasons_for_top_n=0)
    scores = scores.loc[scores["account_id"] != "A0003"].assign(
        scored_at=datetime(2026, 2, 16), run_id="r1"
    )
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("create schema marts")
        con.execute("create schema scores")
        con.register("frame", snapshots)
        con.execute("create table marts.account_features as select * from frame")
        con.register("scored", scores)
        con.execute("create table scores.account_score_history as select * from scored")
    monkeypatch.setenv("EXPANSION_HOME", str(home))
    monkeypatch.setattr(explain, "model_params", lambda _settings: params)
    return home


def test_explain_prints_the_score_offer_and_reasons(home: Path, model: TrainedModel) -> None:
    result = CliRunner().invoke(app, ["explain", "A0001"])
    assert result.exit_code == 0, result.output
    assert f"account A0001 as of {AS_OF}" in result.output
    assert "p(expansion)" in result.output and "offer: " in result.output
    assert f"in the scores of {AS_OF}" in result.output and "decile" in result.output
    assert "  1. " in result.output  # the reasons, numbered

    shown = json.loads(CliRunner().invoke(app, ["explain", "A0003", "--json"]).output)
    assert shown["account_id"] == "A0003" and shown["scored"] is None  # not in the scores
    assert 0 < shown["score"]["p_expansion"] < 1
    assert shown["reasons"] == [
        shown["score"][c] for c in ("reason_1", "reason_2", "reason_3") if shown["score"][c]
    ]
    assert shown["model_version"] == model.version


def test_explain_names_the_account_and_date_it_cannot_explain(home: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(app, ["explain", "NOPE-1"])
    assert unknown.exit_code == EXIT_BAD_INPUT
    assert "NOPE-1" in unknown.output and "no snapshot" in unknown.output
    inactive = runner.invoke(app, ["explain", "A0005"])
    assert inactive.exit_code == EXIT_BAD_INPUT
    assert f"'A0005' is not active at {AS_OF}" in inactive.output
    past = runner.invoke(app, ["explain", "A0005", "--as-of", "2025-12-31"])
    assert past.exit_code == 0, past.output
    assert "as of 2025-12-31" in past.output and "not in the scores of 2025-12-31" in past.output
    missing = runner.invoke(app, ["explain", "A0001", "--as-of", "2030-01-01"])
    assert missing.exit_code == EXIT_BAD_INPUT
    assert "'A0001' has no snapshot at 2030-01-01" in missing.output
