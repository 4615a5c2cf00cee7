"""MLflow tracking (MLFLOW_TRACKING_URI): a training leaves a run with its parameters, backtest
metrics and files, a registered version, and the alias `champion` follows promotions and
rollbacks; a server that does not answer costs a warning, never the training or the model."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from flows import tracking
from flows.cli import app
from flows.modelling import train
from flows.registry import (
    champion_version,
    list_models,
    model_dir,
    promote,
    read_metadata,
    rollback,
    save_model,
)
from flows.settings import Settings
from models.params import Params, load_params
from models.train import TrainedModel, train_model
from tests.models.conftest import AS_OF, BUSINESS, fast_params, synthetic_snapshots, usage_columns

TABLES = ("marts.account_snapshots", "marts.account_features")


@pytest.fixture(scope="module")
def snapshots() -> pd.DataFrame:
    return synthetic_snapshots()


@pytest.fixture(scope="module")
def lenient() -> Params:
    """Small-data params without quality bars (a few hundred synthetic rows are no real model)
    and two backtest cut-offs: enough for metrics per cut-off."""
    params = fast_params(load_params().with_usage_features(BUSINESS, usage_columns()))
    quality = params.quality.model_copy(update={"min_roc_auc": 0.0, "max_brier": 1.0})
    backtest = params.backtest.model_copy(update={"n_cutoffs": 2})
    return params.model_copy(update={"quality": quality, "backtest": backtest})


@pytest.fixture(scope="module")
def model(snapshots: pd.DataFrame, lenient: Params) -> TrainedModel:
    """A model fitted once (with its backtest), saved as a new version by `_save`."""
    return train_model(snapshots, lenient)


def _save(model: TrainedModel, registry: Path, minute: int) -> str:
    fresh = TrainedModel(**{**model.__dict__, "version": None})  # the fixture stays untouched
    return save_model(fresh, registry, "abc", "fp", datetime(2026, 2, 1, 4, minute, tzinfo=UTC))


@pytest.fixture
def settings(
    tmp_path: Path, snapshots: pd.DataFrame, lenient: Params, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """A project home whose warehouse holds the features mart (the CLI finds it too)."""
    home = tmp_path / "state"
    settings = Settings(home=home, project_dir=Path(__file__).resolve().parents[2])
    home.mkdir()
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute("create schema marts")
        con.register("frame", snapshots)
        for table in TABLES:
            con.execute(f"create table {table} as select * from frame")
    monkeypatch.setattr(train, "model_params", lambda _settings: lenient)
    monkeypatch.setattr(tracking, "_failed_at", {})
    monkeypatch.setenv("EXPANSION_HOME", str(home))
    return settings


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite database with its tables: creating them takes MLflow seconds, copying
    the file none."""
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(
    request: pytest.FixtureRequest,
    empty_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """MLFLOW_TRACKING_URI on a local store: a SQLite database (what MLflow recommends), or
    with `indirect` "file" the file store (which MLflow 3 keeps behind MLFLOW_ALLOW_FILE_STORE)."""
    if getattr(request, "param", "sqlite") == "file":
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        uri = (tmp_path / "mlruns").as_uri()
    else:
        shutil.copy(empty_db, tmp_path / "mlflow.db")
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(tracking, "_failed_at", {})
    return uri


def _champion(client: MlflowClient) -> str:
    """The registry version the MLflow alias `champion` points at."""
    found = client.get_model_version_by_alias("expansion", "champion")
    return str(found.tags[tracking.VERSION_TAG])


def test_a_training_is_a_run_and_the_champion_alias_follows_promote_and_rollback(
    store: str, settings: Settings, model: TrainedModel
) -> None:
    uri = store
    first = train.train_model(settings, AS_OF, force=True)
    v1 = first.trained_version
    assert v1 is not None and champion_version(settings.registry) == v1

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("expansion")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == v1 and run.info.status == "FINISHED"
    assert run.data.tags[tracking.VERSION_TAG] == v1
    assert run.data.params["lightgbm.num_leaves"] == "7"
    assert run.data.params["primary_target"] == "expansion"
    assert not [k for k in run.data.params if k.startswith(tracking.TEXT_SECTIONS)]  # phrases

    meta = read_metadata(settings.registry, v1)
    cutoffs = sorted({r["cutoff"] for r in meta["metrics"]})
    per_cutoff = client.get_metric_history(run.info.run_id, "expansion/lightgbm/roc_auc")
    assert [m.step for m in sorted(per_cutoff, key=lambda m: m.step)] == list(range(len(cutoffs)))
    listed = list_models(settings.registry).set_index("version")
    assert run.data.metrics["roc_auc"] == pytest.approx(listed.loc[v1, "roc_auc"])
    assert run.data.metrics["brier"] == pytest.approx(listed.loc[v1, "brier"])
    assert any(k.startswith("action_list/") for k in run.data.metrics)

    files = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"metadata.json", "calibrators.json", "booster_expansion.txt"} <= files
    assert {f"booster_{t}.txt" for t in meta["targets"]} <= files
    backtest = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "backtest")}
    assert backtest == {"metrics.csv", "action_list.csv"}

    assert _champion(client) == v1
    found = client.get_model_version_by_alias("expansion", "champion")
    assert found.run_id == run.info.run_id

    listing = CliRunner().invoke(app, ["models", "list", "--json"])
    assert listing.exit_code == 0, listing.output
    assert json.loads(listing.output)[0]["mlflow_run_id"] == run.info.run_id
    table = CliRunner().invoke(app, ["models", "list"])
    assert run.info.run_id[:8] in table.output

    # a second model made champion, then rolled back with the CLI
    v2 = _save(model, settings.registry, minute=59)
    promote(settings.registry, v2)
    assert _champion(client) == v2
    assert len(client.search_runs([experiment.experiment_id])) == 2

    rolled = CliRunner().invoke(app, ["rollback"])
    assert rolled.exit_code == 0, rolled.output
    assert champion_version(settings.registry) == v1
    assert _champion(client) == v1


@pytest.mark.parametrize("store", ["file"], indirect=True)
def test_the_file_store_holds_runs_versions_and_the_alias(
    store: str, model: TrainedModel, tmp_path: Path
) -> None:
    registry = tmp_path / "registry"
    v1, v2 = _save(model, registry, minute=1), _save(model, registry, minute=2)
    promote(registry, v1)
    promote(registry, v2)
    client = MlflowClient(tracking_uri=store)
    assert _champion(client) == v2
    rollback(registry)
    assert _champion(client) == v1

    run_id = tracking.recorded_run(model_dir(registry, v1))
    assert run_id is not None
    run = client.get_run(run_id)
    assert run.data.params["lightgbm.num_leaves"] == "7" and "roc_auc" in run.data.metrics
    assert "metadata.json" in {Path(a.path).name for a in client.list_artifacts(run_id, "model")}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_warns_and_the_training_goes_on(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = _closed_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://mlflow:s3cret-pw@127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with caplog.at_level(logging.WARNING, logger="flows.tracking"):
        out = train.train_model(settings, AS_OF, force=True)
    assert out.trained_version is not None
    assert champion_version(settings.registry) == out.trained_version  # promoted all the same
    warnings = [r.getMessage() for r in caplog.records if r.name == "flows.tracking"]
    assert warnings and all(f"http://mlflow:***@127.0.0.1:{port}" in w for w in warnings)
    assert not any("s3cret" in w for w in warnings)
    assert not (model_dir(settings.registry, out.trained_version) / tracking.RECORD_FILE).exists()

    listing = CliRunner().invoke(app, ["models", "list", "--json"])
    assert json.loads(listing.output)[0]["mlflow_run_id"] is None


def test_a_model_saved_before_tracking_is_logged_when_promoted_and_gets_its_report(
    model: TrainedModel, store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tracking turned on after the model was saved (or the server was down then): the next
    promotion logs it; the score stage's report is attached to its run."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    registry = tmp_path / "registry"
    version = _save(model, registry, minute=1)
    assert not (model_dir(registry, version) / tracking.RECORD_FILE).exists()

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    uri = store
    promote(registry, version)
    client = MlflowClient(tracking_uri=uri)
    assert _champion(client) == version
    run_id = tracking.recorded_run(model_dir(registry, version))
    assert run_id is not None

    report = tmp_path / f"model_{version}.html"
    report.write_text("<html>report</html>", encoding="utf-8")
    tracking.log_report(model_dir(registry, version), report)
    assert [a.path for a in client.list_artifacts(run_id, "report")] == [f"report/{report.name}"]
    experiment = client.get_experiment_by_name("expansion")
    assert experiment is not None and len(client.search_runs([experiment.experiment_id])) == 1
    # a SQLite store keeps its artifacts beside the database, not in the working directory
    assert (tmp_path / "mlartifacts").is_dir()


def test_without_mlflow_installed_a_warning_says_how_to_install_it(
    model: TrainedModel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    with caplog.at_level(logging.WARNING, logger="flows.tracking"):
        version = _save(model, tmp_path / "registry", minute=1)
    assert model_dir(tmp_path / "registry", version).is_dir()
    assert "pip install '.[mlflow]'" in caplog.text
