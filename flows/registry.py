"""File registry of trained models: save, load, champion pointer, promote, roll back.

Layout of `registry_dir`:

    models/<version>/metadata.json       version, window, features, params, metrics, the
                                          action list's figures and value weight, ...
    models/<version>/calibrators.json
    models/<version>/booster_<target>.txt LightGBM text format
    models/<version>/backtest_predictions.parquet  test-row predictions of the backtest
    champion.json                         {"version", "since", "action", "previous"},
                                          replaced atomically
    history.jsonl                         one line per promote / rollback

Versions are `v<seq:04d>-<trained_at:%Y%m%dT%H%M%SZ>`; seq is one more than the highest
saved. This module does file I/O only; when MLFLOW_TRACKING_URI is set it also tells
`flows.tracking`, after each save, promote and rollback, to mirror it in MLflow (a mirror:
its failures are warnings, never this module's).

Crash safety: a model directory is written under a temporary name and renamed into place, and
the champion pointer is replaced with one rename, so a killed process leaves either the old
champion or the new one, never half a file. The pointer carries its own history entry: when a
process dies between replacing the pointer and appending to history.jsonl, the entry is
appended by the next promote or rollback (`repair_history`) and `champion_history` already
shows it. `clean_staging` removes what an interrupted save left.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import pandas as pd

from flows import tracking
from flows.files import private_dir, write_atomic
from models.backtest import PREDICTION_COLUMNS
from models.calibration import Calibrator
from models.offers import OfferValues
from models.params import Params, load_params
from models.train import TrainedModel

MODELS_DIR = "models"
CHAMPION_FILE = "champion.json"
HISTORY_FILE = "history.jsonl"
PREDICTIONS_FILE = "backtest_predictions.parquet"
VERSION_RE = re.compile(r"^v(\d{4,})-(\d{8}T\d{6}Z)$")


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _write_json_atomic(path: Path, payload: Any) -> None:
    write_atomic(
        path, json.dumps(_clean(payload), indent=2, sort_keys=True, allow_nan=False) + "\n"
    )


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError(f"trained_at must be timezone-aware (UTC), got naive {ts.isoformat()}")
    return ts.astimezone(UTC)


def _versions(registry_dir: Path) -> list[str]:
    root = registry_dir / MODELS_DIR
    if not root.is_dir():
        return []
    found = [p.name for p in root.iterdir() if VERSION_RE.match(p.name) and p.is_dir()]
    return sorted(found, key=lambda v: int(VERSION_RE.match(v).group(1)))  # type: ignore[union-attr]


def model_dir(registry_dir: Path, version: str) -> Path:
    """A saved model's folder (FileNotFoundError naming the versions there are)."""
    path = Path(registry_dir) / MODELS_DIR / version
    if not (path / "metadata.json").is_file():
        known = ", ".join(_versions(Path(registry_dir))) or "none"
        raise FileNotFoundError(f"no model {version!r} in registry {registry_dir}; known: {known}")
    return path


def save_model(
    model: TrainedModel,
    registry_dir: Path,
    code_version: str,
    data_fingerprint: str,
    trained_at: datetime,
    training_key: str | None = None,
) -> str:
    """Write the model under a new version directory (atomically) and return the version.

    `training_key` identifies everything the fit depended on (see `find_trained`)."""
    registry_dir = Path(registry_dir)
    root = registry_dir / MODELS_DIR
    private_dir(root)  # owner-only, whatever the umask
    trained_at = _utc(trained_at)
    existing = _versions(registry_dir)
    seq = int(VERSION_RE.match(existing[-1]).group(1)) + 1 if existing else 1  # type: ignore[union-attr]
    version = f"v{seq:04d}-{trained_at:%Y%m%dT%H%M%SZ}"
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=root))
    try:
        for target, booster in model.boosters.items():
            (staging / f"booster_{target}.txt").write_text(
                booster.model_to_string(), encoding="utf-8"
            )
        _write_json_atomic(
            staging / "calibrators.json",
            {t: c.to_dict() for t, c in model.calibrators.items()},
        )
        if model.backtest_predictions is not None:
            model.backtest_predictions.to_parquet(staging / PREDICTIONS_FILE, index=False)
        metadata = {
            "version": version,
            "trained_at": trained_at.isoformat().replace("+00:00", "Z"),
            "code_version": code_version,
            "data_fingerprint": data_fingerprint,
            "training_key": training_key,
            "targets": list(model.boosters),
            "features": model.features,
            "categorical_features": model.categorical_features,
            "categories": model.categories,
            "training_window": {
                "start": model.training_window_start.isoformat(),
                "end": model.training_window_end.isoformat(),
                "validation_start": model.validation_start.isoformat(),
            },
            "n_rows": model.n_rows,
            "n_train_rows": model.n_train_rows,
            "n_validation_rows": model.n_validation_rows,
            "expansion_mrr_ratio": model.expansion_mrr_ratio,
            "offer_values": None if model.offer_values is None else model.offer_values.to_dict(),
            "best_iterations": model.best_iterations,
            "params": model.params.model_dump(mode="json"),
            "metrics": model.metrics,
            "action_value_weight": model.action_value_weight,
            "ranking_metrics": model.ranking_metrics,
            "ranking_curve": model.ranking_curve,
            "value_weight_scan": model.value_weight_scan,
        }
        _write_json_atomic(staging / "metadata.json", metadata)
        os.replace(staging, root / version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    model.version = version
    model.code_version = code_version
    model.data_fingerprint = data_fingerprint
    model.trained_at = trained_at.isoformat().replace("+00:00", "Z")
    tracking.log_training(root / version)
    return version


def read_metadata(registry_dir: Path, version: str) -> dict[str, Any]:
    """The metadata.json of a saved model."""
    metadata: dict[str, Any] = _read_json(model_dir(registry_dir, version) / "metadata.json")
    return metadata


# What a saved model's predictions depend on; everything else in params (offers, tiers,
# suppression, reason phrases) is business configuration read fresh at scoring time.
_MODEL_SECTIONS = ("features", "targets", "primary_target", "label_horizon_days", "lightgbm")


def _saved_params(saved: dict[str, Any], version: str) -> Params:
    """The saved params, or, when params.yaml's schema has moved on since the model was saved,
    today's params with the saved model-defining sections (features, targets, LightGBM)."""
    try:
        return Params.model_validate(saved)
    except ValueError:
        current = load_params().model_dump(mode="json")
        current.update({k: saved[k] for k in _MODEL_SECTIONS if k in saved})
        # the model's own features keep their saved phrases (usage features, declared ones)
        current["reasons"] = {**saved.get("reasons", {}), **current["reasons"]}
        try:
            return Params.model_validate(current)
        except ValueError as exc:
            raise ValueError(
                f"model {version} was saved with parameters today's models/params.yaml can no "
                f"longer express: {exc}"
            ) from exc


def load_model(registry_dir: Path, version: str) -> TrainedModel:
    """Rebuild a saved TrainedModel (predictions identical to the saved one)."""
    path = model_dir(registry_dir, version)
    meta = read_metadata(registry_dir, version)
    calibrators = _read_json(path / "calibrators.json")
    boosters = {
        t: lgb.Booster(model_str=(path / f"booster_{t}.txt").read_text(encoding="utf-8"))
        for t in meta["targets"]
    }
    metrics = [
        {k: (math.nan if v is None and k != "detail" else v) for k, v in r.items()}
        for r in meta["metrics"]
    ]
    ratio = meta["expansion_mrr_ratio"]
    window = meta["training_window"]
    offer_values = meta.get("offer_values")
    weight = meta.get("action_value_weight")  # absent: saved before the action list was measured
    predictions_path = path / PREDICTIONS_FILE
    predictions = (
        pd.read_parquet(predictions_path).loc[:, list(PREDICTION_COLUMNS)]
        if predictions_path.is_file()
        else None
    )
    return TrainedModel(
        boosters=boosters,
        calibrators={t: Calibrator.from_dict(calibrators[t]) for t in meta["targets"]},
        features=list(meta["features"]),
        categorical_features=list(meta["categorical_features"]),
        categories={k: list(v) for k, v in meta["categories"].items()},
        params=_saved_params(meta["params"], version),
        metrics=metrics,
        training_window_start=date.fromisoformat(window["start"]),
        training_window_end=date.fromisoformat(window["end"]),
        validation_start=date.fromisoformat(window["validation_start"]),
        n_rows=int(meta["n_rows"]),
        n_train_rows=int(meta["n_train_rows"]),
        n_validation_rows=int(meta["n_validation_rows"]),
        expansion_mrr_ratio=math.nan if ratio is None else float(ratio),
        best_iterations={k: int(v) for k, v in meta["best_iterations"].items()},
        version=meta["version"],
        backtest_predictions=predictions,
        offer_values=None if offer_values is None else OfferValues.from_dict(offer_values),
        code_version=meta.get("code_version"),
        data_fingerprint=meta.get("data_fingerprint"),
        trained_at=meta.get("trained_at"),
        action_value_weight=None if weight is None else float(weight),
        ranking_metrics=_figures(meta.get("ranking_metrics")),
        ranking_curve=_figures(meta.get("ranking_curve")),
        value_weight_scan=_figures(meta.get("value_weight_scan")),
    )


def _figures(records: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Saved figure records (missing = none), a null figure back to NaN (JSON has no NaN)."""
    return [
        {k: (math.nan if v is None else v) for k, v in record.items()} for record in records or []
    ]


def find_trained(registry_dir: Path, training_key: str) -> str | None:
    """The latest saved model fitted from exactly these inputs (same `training_key`), if any:
    fitting is deterministic, so it is what a new fit would produce."""
    for version in reversed(_versions(Path(registry_dir))):
        try:
            if read_metadata(registry_dir, version).get("training_key") == training_key:
                return version
        except (OSError, ValueError):  # an unreadable old version is not a cache hit
            continue
    return None


def clean_staging(registry_dir: Path) -> list[str]:
    """Remove the temporary directories and files of saves and pointer writes that were
    interrupted (only the holder of the pipeline lock writes the registry)."""
    registry_dir = Path(registry_dir)
    removed: list[str] = []
    root = registry_dir / MODELS_DIR
    for stale in sorted(root.glob(".v*")) if root.is_dir() else []:
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(str(stale))
    for stale in sorted(registry_dir.glob(f".{CHAMPION_FILE}.*")) if registry_dir.is_dir() else []:
        stale.unlink(missing_ok=True)
        removed.append(str(stale))
    return removed


def champion_version(registry_dir: Path) -> str | None:
    """The champion's version, None before the first promotion."""
    path = Path(registry_dir) / CHAMPION_FILE
    if not path.is_file():
        return None
    version = _read_json(path).get("version")
    return str(version) if version else None


def _champion_event(registry_dir: Path) -> dict[str, Any] | None:
    """The history entry the champion pointer carries (None: no pointer, or an old one)."""
    path = Path(registry_dir) / CHAMPION_FILE
    if not path.is_file():
        return None
    doc = _read_json(path)
    if "action" not in doc:
        return None
    return {
        "action": doc["action"],
        "version": doc["version"],
        "previous": doc.get("previous"),
        "at": doc.get("since"),
    }


def _read_history(registry_dir: Path) -> list[dict[str, Any]]:
    path = Path(registry_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:  # a line torn by a killed writer: its event is in the pointer
            continue
    return entries


def _append_history(registry_dir: Path, entry: dict[str, Any]) -> None:
    path = Path(registry_dir) / HISTORY_FILE
    with path.open("a+b") as fh:
        fh.seek(0, os.SEEK_END)
        torn = False
        if fh.tell():
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
        line = json.dumps(entry, sort_keys=True) + "\n"
        fh.write((("\n" if torn else "") + line).encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def repair_history(registry_dir: Path) -> bool:
    """Append the pointer's own entry to history.jsonl when a killed process left it out.
    Returns whether an entry was appended."""
    event = _champion_event(registry_dir)
    if event is None:
        return False
    entries = _read_history(registry_dir)
    if entries and entries[-1] == event:
        return False
    _append_history(registry_dir, event)
    return True


def _set_champion(registry_dir: Path, version: str, action: str, at: datetime | None) -> None:
    registry_dir = Path(registry_dir)
    model_dir(registry_dir, version)
    repair_history(registry_dir)
    previous = champion_version(registry_dir)
    when = _utc(at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    _write_json_atomic(
        registry_dir / CHAMPION_FILE,
        {"version": version, "since": when, "action": action, "previous": previous},
    )
    _append_history(
        registry_dir, {"action": action, "version": version, "previous": previous, "at": when}
    )
    tracking.set_champion(model_dir(registry_dir, version))


def promote(registry_dir: Path, version: str, at: datetime | None = None) -> None:
    """Make `version` the champion (pointer replaced atomically; history appended)."""
    _set_champion(registry_dir, version, "promote", at)


def champion_history(registry_dir: Path) -> list[dict[str, Any]]:
    """Promote / rollback events, oldest first (with the pointer's own event when a killed
    process did not get to append it)."""
    entries = _read_history(registry_dir)
    event = _champion_event(registry_dir)
    if event is not None and (not entries or entries[-1] != event):
        entries.append(event)
    return entries


def rollback(registry_dir: Path, version: str | None = None, at: datetime | None = None) -> str:
    """Point the champion back to `version` and return it.

    Default: the champion that the current one replaced when it was promoted (so promoting
    A, B, C then rolling back twice gives B, then A).
    """
    if version is None:
        current = champion_version(registry_dir)
        if current is None:
            raise ValueError(f"registry {registry_dir} has no champion to roll back from")
        promotions = [
            e
            for e in champion_history(registry_dir)
            if e["action"] == "promote" and e["version"] == current
        ]
        previous = promotions[-1]["previous"] if promotions else None
        if previous is None:
            raise ValueError(f"registry {registry_dir}: no champion before {current}")
        version = str(previous)
    _set_champion(registry_dir, version, "rollback", at)
    return version


def list_models(registry_dir: Path) -> pd.DataFrame:
    """One row per saved model: version, trained_at, window, rows, latest metrics, champion."""
    champion = champion_version(registry_dir)
    rows = []
    for version in _versions(Path(registry_dir)):
        meta = read_metadata(registry_dir, version)
        primary = meta["params"].get("primary_target", "expansion")
        latest = [r for r in meta["metrics"] if r["target"] == primary and r["model"] == "lightgbm"]
        latest.sort(key=lambda r: r["cutoff"])
        last = latest[-1] if latest else {}
        rows.append(
            {
                "version": version,
                "trained_at": meta["trained_at"],
                "code_version": meta["code_version"],
                "data_fingerprint": meta["data_fingerprint"],
                "training_window_start": meta["training_window"]["start"],
                "training_window_end": meta["training_window"]["end"],
                "n_rows": meta["n_rows"],
                "latest_cutoff": last.get("cutoff"),
                "roc_auc": last.get("roc_auc"),
                "brier": last.get("brier"),
                "is_champion": version == champion,
            }
        )
    columns = [
        "version",
        "trained_at",
        "code_version",
        "data_fingerprint",
        "training_window_start",
        "training_window_end",
        "n_rows",
        "latest_cutoff",
        "roc_auc",
        "brier",
        "is_champion",
    ]
    return pd.DataFrame(rows, columns=columns)
