"""Experiment tracking in MLflow: a mirror of the file registry where data scientists look.

Off unless `MLFLOW_TRACKING_URI` is set (MLflow's own variable; `pip install '.[mlflow]'`).
Then every model the registry saves becomes a run of the experiment `mlflow_experiment`
(settings; its parameters, its backtest metrics per cut-off, its files, later its model report)
and a version of the registered model `mlflow_model`, and the alias `champion` follows the
registry's champion pointer on every promote and rollback.

The file registry (flows/registry.py) stays the source of truth: nothing here is read back to
score or to decide, each call comes after the registry's own write succeeded, and a failure
(the server down, mlflow not installed) is one warning naming the masked URI, never an error.
A model MLflow missed (its server was down, tracking was turned on later) is logged when it is
next promoted or rolled back to. What MLflow holds of a model is recorded beside it, in
`models/<version>/mlflow.json` (run id and model version per masked URI), so that
`expansion models list` shows the run without asking the server.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import pandas as pd

from flows.files import write_atomic
from flows.masking import mask_text
from flows.settings import get_settings

log = logging.getLogger(__name__)

URI_ENV = "MLFLOW_TRACKING_URI"
RECORD_FILE = "mlflow.json"
CHAMPION_ALIAS = "champion"
VERSION_TAG = "expansion.version"
# Parameter sections that are phrases for people, not settings of the fit.
TEXT_SECTIONS = ("reasons", "metric_texts")
SUMMARY = ("roc_auc", "brier")  # the figures `expansion models list` shows
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter's value
BATCH = 100  # parameters (and a tenth of the metrics) MLflow accepts in one log_batch
# A server that does not answer costs this much once, not at every call of the process.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
RETRY_AFTER_S = 300.0

_failed_at: dict[str, float] = {}
T = TypeVar("T")


def tracking_uri() -> str | None:
    """The MLflow tracking URI, None when tracking is off."""
    return os.environ.get(URI_ENV) or None


def log_training(model_folder: Path) -> None:
    """Mirror a model the registry has just saved: its run and its registered version."""
    _guarded("log", model_folder, _ensure_logged)


def set_champion(model_folder: Path) -> None:
    """Point the alias `champion` at this model (the registry just promoted or rolled back
    to it), logging the model first when MLflow does not have it yet."""
    _guarded("move the champion alias to", model_folder, _alias_champion)


def log_report(model_folder: Path, report: Path) -> None:
    """Attach a model report (the HTML page the score stage writes) to the model's run."""

    def attach(client: Any, uri: str, folder: Path) -> None:
        record = _ensure_logged(client, uri, folder)
        client.log_artifact(record["run_id"], str(report), "report")

    _guarded("attach the report to", model_folder, attach)


def recorded_run(model_folder: Path) -> str | None:
    """The run id of a saved model on the current tracking URI (None: off, or not logged)."""
    uri = tracking_uri()
    record = _record(model_folder, uri) if uri else None
    return None if record is None else record.get("run_id")


def _guarded(what: str, folder: Path, call: Callable[[Any, str, Path], T]) -> T | None:
    """Run `call(client, uri, folder)` when tracking is on; any failure is a warning."""
    uri = tracking_uri()
    if uri is None:
        return None
    shown = mask_text(uri)
    failed = _failed_at.get(uri)
    if failed is not None and time.monotonic() - failed < RETRY_AFTER_S:
        log.warning(
            "MLflow at %s failed %.0f s ago: did not %s model %s (it is in the file registry)",
            shown,
            time.monotonic() - failed,
            what,
            folder.name,
        )
        return None
    try:
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        from mlflow import MlflowClient

        return call(MlflowClient(tracking_uri=uri), uri, folder)
    except ImportError as exc:
        log.warning(
            "%s=%s but mlflow cannot be imported (%s): install it with pip install '.[mlflow]'; "
            "model %s is in the file registry only",
            URI_ENV,
            shown,
            exc,
            folder.name,
        )
    except Exception as exc:  # a mirror: whatever MLflow raises, the run goes on
        _failed_at[uri] = time.monotonic()
        log.warning(
            "MLflow at %s: could not %s model %s (it is in the file registry; MLflow catches up "
            "at its next promotion or rollback): %s: %s",
            shown,
            what,
            folder.name,
            type(exc).__name__,
            mask_text(str(exc), 300),
        )
    return None


def _alias_champion(client: Any, uri: str, folder: Path) -> None:
    record = _ensure_logged(client, uri, folder)
    client.set_registered_model_alias(record["model"], CHAMPION_ALIAS, record["model_version"])
    log.info(
        "MLflow: %s@%s is now version %s (%s)",
        record["model"],
        CHAMPION_ALIAS,
        record["model_version"],
        folder.name,
    )


def _ensure_logged(client: Any, uri: str, folder: Path) -> dict[str, Any]:
    """The model's run and registered version on this URI, logged now when missing."""
    settings = get_settings()
    record = _record(folder, uri) or {}
    if "run_id" not in record:
        meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
        experiment = _experiment_id(client, uri, settings.mlflow_experiment)
        record = {"run_id": _log_run(client, experiment, folder, meta)}
        _write_record(folder, uri, record)
    if record.get("model") != settings.mlflow_model or "model_version" not in record:
        record = {
            **record,
            "model": settings.mlflow_model,
            "model_version": _register(client, settings.mlflow_model, record["run_id"], folder),
        }
        _write_record(folder, uri, record)
    return record


def _experiment_id(client: Any, uri: str, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    return str(client.create_experiment(name, artifact_location=_local_artifacts(uri)))


def _local_artifacts(uri: str) -> str | None:
    """Artifacts of a SQLite store go beside its database file (MLflow's default, ./mlruns,
    is relative to wherever the process happens to run); other stores decide for themselves."""
    parts = urlsplit(uri)
    if parts.scheme != "sqlite" or not parts.path or parts.path == "/:memory:":
        return None
    database = Path(unquote(parts.path.removeprefix("/"))).expanduser().resolve()
    return (database.parent / "mlartifacts").as_uri()


def _log_run(client: Any, experiment: str, folder: Path, meta: dict[str, Any]) -> str:
    version = str(meta["version"])
    run = client.create_run(
        experiment,
        start_time=_ms(datetime.fromisoformat(str(meta["trained_at"]).replace("Z", "+00:00"))),
        run_name=version,
        tags={
            VERSION_TAG: version,
            "expansion.code_version": str(meta.get("code_version")),
            "expansion.data_fingerprint": str(meta.get("data_fingerprint")),
        },
    )
    run_id = str(run.info.run_id)
    try:
        from mlflow.entities import Metric, Param

        params = [Param(k, v) for k, v in _params(meta).items()]
        metrics = [Metric(k, v, ts, step) for k, v, ts, step in _metrics(meta)]
        for some_params in _chunks(params, BATCH):
            client.log_batch(run_id, params=some_params)
        for some_metrics in _chunks(metrics, 10 * BATCH):
            client.log_batch(run_id, metrics=some_metrics)
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.name != RECORD_FILE:
                client.log_artifact(run_id, str(path), "model")
        with tempfile.TemporaryDirectory(prefix="expansion-mlflow-") as tmp:
            for name, records in (
                ("metrics.csv", meta.get("metrics")),
                ("action_list.csv", meta.get("ranking_metrics")),
            ):
                pd.DataFrame(records or []).to_csv(Path(tmp) / name, index=False)
            client.log_artifacts(run_id, tmp, "backtest")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _register(client: Any, name: str, run_id: str, folder: Path) -> str:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(
            name, description="Expansion models, mirrored from the pipeline's file registry"
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if found:  # registered before the record could say so
        return str(found[0].version)
    created = client.create_model_version(
        name,
        source,
        run_id=run_id,
        tags={VERSION_TAG: folder.name},
        description=f"file registry version {folder.name}",
    )
    return str(created.version)


def _params(meta: dict[str, Any]) -> dict[str, str]:
    """The model's parameters flattened (`lightgbm.num_leaves`), lists as JSON, plus what it
    was trained on; phrase tables are left out."""
    out: dict[str, str] = {}

    def walk(key: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{key}.{k}" if key else str(k), v)
            return
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        out[re.sub(r"[^\w\-. /]", "_", key)] = text[:MAX_PARAM_LENGTH]

    walk("", {k: v for k, v in meta["params"].items() if k not in TEXT_SECTIONS})
    walk("training_window", meta.get("training_window", {}))
    walk("best_iterations", meta.get("best_iterations", {}))
    for key in ("n_rows", "n_train_rows", "n_validation_rows", "code_version", "training_key"):
        walk(key, meta.get(key))
    return out


def _metrics(meta: dict[str, Any]) -> Iterator[tuple[str, float, int, int]]:
    """(key, value, timestamp ms, step) of every backtest figure: step i is the i-th cut-off
    (timestamp its date). `<target>/<model>/<metric>` per cut-off, `action_list/<ranking>/
    <cut>/<figure>` for the action list, and the figures `models list` shows (primary target,
    LightGBM) as plain `roc_auc` and `brier`, whose last step is the last cut-off."""
    records = meta.get("metrics") or []
    ranking = meta.get("ranking_metrics") or []
    cutoffs = sorted({str(r["cutoff"]) for r in [*records, *ranking]})
    step = {c: i for i, c in enumerate(cutoffs)}
    primary = meta["params"].get("primary_target", "expansion")
    for r in records:
        at = _ms(date.fromisoformat(str(r["cutoff"]))), step[str(r["cutoff"])]
        for figure, value in _figures(r):
            yield _key(r["target"], r["model"], figure), value, *at
            if r["target"] == primary and r["model"] == "lightgbm" and figure in SUMMARY:
                yield figure, value, *at
    for r in ranking:
        at = _ms(date.fromisoformat(str(r["cutoff"]))), step[str(r["cutoff"])]
        for figure, value in _figures(r):
            yield _key("action_list", r["ranking"], r["cut"], figure), value, *at


def _figures(record: dict[str, Any]) -> Iterator[tuple[str, float]]:
    for key, value in record.items():
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and math.isfinite(value):
            yield key, float(value)


def _key(*parts: Any) -> str:
    """A metric or parameter name MLflow accepts, parts joined with `/`."""
    return "/".join(re.sub(r"[^\w\-. ]", "_", str(p)) or "_" for p in parts)


def _ms(at: date | datetime) -> int:
    if not isinstance(at, datetime):
        at = datetime(at.year, at.month, at.day, tzinfo=UTC)
    return int(at.timestamp() * 1000)


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _record(folder: Path, uri: str | None) -> dict[str, Any] | None:
    path = folder / RECORD_FILE
    if uri is None or not path.is_file():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8")).get(mask_text(uri))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _write_record(folder: Path, uri: str, record: dict[str, Any]) -> None:
    path = folder / RECORD_FILE
    try:
        known = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        known = {}
    known[mask_text(uri)] = record
    write_atomic(path, json.dumps(known, indent=2, sort_keys=True) + "\n")
