"""Training is cached on its inputs: the same snapshots, parameters and code give the saved
model back instead of a new fit; any change to them fits again."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from flows.modelling import train
from flows.quality import drift
from flows.registry import champion_version, list_models, model_dir
from flows.settings import Settings
from models.params import Params

SUITE = "drift_account_snapshots.json"
# The flows read the features from marts.account_features (account_snapshots plus the usage
# features); both hold the synthetic rows here.
TABLES = ("marts.account_snapshots", "marts.account_features")


@pytest.fixture
def lenient(params: Params) -> Params:
    """The test params without quality bars: a few hundred synthetic rows are no real model."""
    quality = params.quality.model_copy(update={"min_roc_auc": 0.0, "max_brier": 1.0})
    return params.model_copy(update={"quality": quality})


@pytest.fixture
def settings(
    tmp_path: Path, snapshots: pd.DataFrame, lenient: Params, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    settings = Settings(home=tmp_path / "state", project_dir=Path(__file__).resolve().parents[2])
    settings.warehouse.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute("create schema marts")
        con.register("frame", snapshots)
        for table in TABLES:
            con.execute(f"create table {table} as select * from frame")
    monkeypatch.setattr(train, "model_params", lambda _settings: lenient)
    return settings


def test_same_inputs_reuse_the_model_changed_inputs_fit_again(
    settings: Settings,
    lenient: Params,
    as_of: date,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = train.train_model(settings, as_of, force=True)
    assert first.reused is False and champion_version(settings.registry) == first.trained_version

    again = train.train_model(settings, as_of, force=True)
    assert again.reused is True and again.trained_version == first.trained_version
    assert "these very inputs" in again.decision
    assert len(list_models(settings.registry)) == 1  # nothing was fitted or saved

    # other parameters: a new key, so a new fit
    changed = lenient.model_copy(
        update={"lightgbm": lenient.lightgbm.model_copy(update={"learning_rate": 0.2})}
    )
    monkeypatch.setattr(train, "model_params", lambda _settings: changed)
    third = train.train_model(settings, as_of, force=True)
    assert third.reused is False and third.trained_version != first.trained_version
    assert len(list_models(settings.registry)) == 2


def test_the_key_covers_rows_and_parameters(snapshots: pd.DataFrame, params: Params) -> None:
    key = train.training_key(snapshots, params)
    assert train.training_key(snapshots.copy(), params) == key
    assert train.training_key(snapshots.iloc[1:], params) != key
    edited = snapshots.copy()
    edited.loc[edited.index[0], "mrr_usd"] += 1
    assert train.training_key(edited, params) != key
    renamed = snapshots.rename(columns={"tickets_90d": "tickets_13w"})
    assert train.training_key(renamed, params) != key
    other = params.model_copy(update={"primary_target": "upsell"})
    assert train.training_key(snapshots, other) != key


def test_a_champion_whose_features_left_the_marts_is_replaced(
    settings: Settings, lenient: Params, as_of: date, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A feature renamed in dbt and params.yaml: the champion cannot score, so the next run
    trains and promotes a replacement on the quality bars alone, without being asked to."""
    first = train.train_model(settings, as_of, force=True)
    assert train.train_model(settings, as_of).decision == "champion reused (no retrain asked)"
    with duckdb.connect(str(settings.warehouse)) as con:
        for table in TABLES:
            con.execute(f"alter table {table} rename column tickets_90d to tickets_13w")
    features = lenient.features
    numeric = [("tickets_13w" if f == "tickets_90d" else f) for f in features.numeric]
    reasons = {**lenient.reasons, "tickets_13w": lenient.reasons["tickets_90d"]}
    renamed = lenient.model_copy(
        update={"features": features.model_copy(update={"numeric": numeric}), "reasons": reasons}
    )
    monkeypatch.setattr(train, "model_params", lambda _settings: renamed)
    assert drift.check_drift(settings, as_of) == []  # the gate does not stop the replacement
    out = train.train_model(settings, as_of)
    assert out.stale_champion == {
        "version": first.trained_version,
        "features_gone": ["tickets_90d"],
    }
    assert out.trained_version not in (None, first.trained_version)
    assert champion_version(settings.registry) == out.trained_version


def test_the_drift_reference_travels_with_the_model(
    settings: Settings, as_of: date, tmp_path: Path
) -> None:
    """Written at training into the model's folder: a warehouse that never held the training
    rows (a champion trained elsewhere) checks drift against the same distribution."""
    # the synthetic rows drift at random: the drift suite as warnings, so results come back
    suite = json.loads((settings.project_dir / "expectations" / SUITE).read_text())
    for expectation in suite["expectations"]:
        expectation["meta"]["severity"] = "warning"
    (tmp_path / "expectations").mkdir()
    (tmp_path / "expectations" / SUITE).write_text(json.dumps(suite))
    settings = settings.model_copy(update={"expectations_dir": tmp_path / "expectations"})
    version = train.train_model(settings, as_of, force=True).trained_version
    kept = model_dir(settings.registry, version) / "drift_reference_10bins.json"
    assert kept.is_file()
    first = drift.check_drift(settings, as_of)
    # a model saved without its reference gets the same one from the warehouse's rows
    written_at_training = kept.read_text()
    kept.unlink()
    assert [r.preview for r in drift.check_drift(settings, as_of)] == [r.preview for r in first]
    assert kept.read_text() == written_at_training
    with duckdb.connect(str(settings.warehouse)) as con:
        for table in TABLES:
            con.execute(f"delete from {table} where snapshot_date <> ?", [as_of])
    again = drift.check_drift(settings, as_of)
    assert first and [r.preview for r in again] == [r.preview for r in first]
