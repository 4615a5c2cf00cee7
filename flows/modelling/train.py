"""The train stage: fit a challenger when one is needed (or reuse the fit of the same inputs),
and promote it when it beats the champion."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import lightgbm
import pandas as pd

import models
from flows.errors import ModelQualityError
from flows.faults import crash_point
from flows.modelling.distributed import fit_model
from flows.quality.champion import features_gone
from flows.quality.drift import keep_drift_references
from flows.registry import (
    champion_version,
    find_trained,
    list_models,
    load_model,
    promote,
    read_metadata,
    save_model,
)
from flows.settings import Settings
from flows.transform.manifest import FEATURES_TABLE, model_params
from flows.warehouse import Warehouse, replace_table, table_columns
from models.fingerprint import data_fingerprint, rows_fingerprint
from models.params import Params
from models.promotion import decide_promotion

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What the train stage decided: the champion after it, the model it fitted (if any)."""

    champion_version: str | None
    trained_version: str | None = None
    decision: str = ""
    reused: bool = False
    challenger_metrics: dict[str, Any] = field(default_factory=dict)
    stale_champion: dict[str, Any] | None = None


def code_version(settings: Settings) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(settings.project_dir), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"pkg-{package_version('expansion-pipeline')}"


def _write_model_metrics(settings: Settings) -> None:
    """scores.model_metrics: every registered model's backtest metrics, for BI and audits.

    Two kinds of rows: a model's metrics per cut-off, target and model (`ranking` null), and
    its action list's figures per cut-off, `ranking` (default | probability) and list size
    `cut` (models/ranking.py: n_contacted, expanders, hit_rate, expansion_mrr_captured,
    expected_mrr_captured, n_rows; `target` and `model` null)."""

    champion = champion_version(settings.registry)
    records: list[dict[str, Any]] = []
    for version in list_models(settings.registry)["version"]:
        meta = read_metadata(settings.registry, version)
        for r in [*meta.get("metrics", []), *meta.get("ranking_metrics", [])]:
            records.append(
                {
                    "model_version": version,
                    "is_champion": version == champion,
                    "trained_at": meta.get("trained_at"),
                    **{k: v for k, v in r.items() if not isinstance(v, dict | list)},
                }
            )
    frame = pd.DataFrame(records)
    if frame.empty:
        frame = pd.DataFrame(
            {"model_version": pd.Series(dtype=str), "is_champion": pd.Series(dtype=bool)}
        )
    with Warehouse.from_settings(settings).connect() as con:
        replace_table(con, "scores.model_metrics", frame)


def _account_owners(settings: Settings) -> pd.Series | None:
    """account_id -> owner_name of marts.accounts (None without it): the owners of per-owner
    touch tiers in the action list's backtest figures."""
    with Warehouse.from_settings(settings).connect(read_only=True) as con:
        if "owner_name" not in table_columns(con, "marts.accounts"):
            return None
        frame = con.execute("select account_id, owner_name from marts.accounts").df()
    return frame.set_index("account_id")["owner_name"]


def training_key(snapshots: pd.DataFrame, params: Params) -> str:
    """What a fit depends on: the snapshot rows (in any order), the parameters, the ML code
    and LightGBM."""

    digest = hashlib.sha256(rows_fingerprint(snapshots).encode())
    digest.update(json.dumps(params.model_dump(mode="json"), sort_keys=True).encode())
    for source in sorted(Path(models.__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    digest.update(lightgbm.__version__.encode())
    return digest.hexdigest()[:24]


def _fit_or_reuse(
    settings: Settings, snapshots: pd.DataFrame, params: Params, *, reuse: bool = True
) -> tuple[str, bool]:
    """Fit and save a model, or reuse the saved one fitted from the same inputs (a cache keyed
    on `training_key`: a weekly retrain on unchanged data, or a backfill rerun, costs nothing;
    `reuse=False` fits again all the same). Returns the version and whether it was reused."""

    key = training_key(snapshots, params)
    if settings.dask_address:  # refitted on Dask: close to, not equal to, a local fit
        key += "-dask"
    cached = find_trained(settings.registry, key) if reuse else None
    if cached is not None:
        log.info("training inputs unchanged since model %s: reused, not refitted", cached)
        return cached, True
    log.debug("no model fitted from training key %s yet: fitting", key)
    model = fit_model(settings, snapshots, params, owners=_account_owners(settings))
    version = save_model(
        model,
        settings.registry,
        code_version=code_version(settings),
        data_fingerprint=data_fingerprint(snapshots),
        trained_at=datetime.now(UTC),
        training_key=key,
    )
    return version, False


def train_model(settings: Settings, as_of: date, *, force: bool = False) -> TrainResult:
    """Train a challenger when there is no champion (or when asked) and promote it if it wins."""
    params = model_params(settings)
    champion = champion_version(settings.registry)
    out = TrainResult(champion_version=champion)
    # A champion that needs columns the marts no longer have (a feature renamed or dropped in
    # dbt) cannot score: train a replacement, judged on the quality bars alone.
    gone = features_gone(settings, champion) if champion else []
    if gone:
        log.warning(
            "champion %s needs %s, no longer in the marts: training a replacement",
            champion,
            ", ".join(gone),
        )
        out.stale_champion = {"version": champion, "features_gone": gone}
    if champion and not force and not gone:
        out.decision = "champion reused (no retrain asked)"
        _write_model_metrics(settings)
        return out

    snapshots = read_snapshots(settings, as_of)
    version, reused = _fit_or_reuse(settings, snapshots, params)
    if not reused:
        keep_drift_references(settings, version, snapshots)
    crash_point("train.saved")
    out.trained_version = version
    out.reused = reused
    if version == champion:
        out.decision = "the champion was trained on these very inputs: kept"
        _write_model_metrics(settings)
        return out
    model = load_model(settings.registry, version)
    # The bars make evaluate and the model report show (models.acceptance), and against a
    # champion that can still score, the paired comparison on the rows both predicted.
    rival = load_model(settings.registry, champion) if champion and not gone else None
    decision = decide_promotion(model, rival, snapshots, params)
    promoted, reason = decision.promote, decision.reason
    out.decision = reason
    out.challenger_metrics = decision.summary()
    if promoted:
        promote(settings.registry, version)
        crash_point("train.promoted")
        out.champion_version = version
    elif champion is None or gone:
        where = settings.params_path or "models/params.yaml"
        raise ModelQualityError(
            (
                f"no champion model, and the first trained model {version}"
                if champion is None
                else f"champion {champion} cannot score (needs {', '.join(gone)}, no longer in "
                f"the marts), and its replacement {version}"
            )
            + f" does not pass the quality bars in {where}: {reason}"
        )
    log.info("model %s: %s", version, reason)
    _write_model_metrics(settings)
    return out


def read_snapshots(settings: Settings, as_of: date) -> pd.DataFrame:
    """The training rows known at as_of, always in the same order (snapshot date, account):
    the same marts give the same frame, so the same fit, and the training cache hits."""
    return Warehouse.from_settings(settings).read_frame(
        f"select * from {FEATURES_TABLE} where snapshot_date <= ? "
        "order by snapshot_date, account_id",
        [as_of],
    )


def train_as_of(settings: Settings, as_of: date, *, refit: bool = False) -> TrainResult:
    """A model that knows only what was known at as_of, for backfilling that date.

    It trains on snapshots whose labels were complete by as_of, is saved in the registry like
    any model (so its window and metrics can be inspected) and is never promoted. Rerunning
    the backfill of a date reuses it (same inputs, same model) unless `refit`.
    """
    snapshots = read_snapshots(settings, as_of)
    version, reused = _fit_or_reuse(settings, snapshots, model_params(settings), reuse=not refit)
    return TrainResult(
        champion_version=version,
        trained_version=version,
        decision=f"backfill model {'reused' if reused else 'trained'} on what was known at {as_of}",
        reused=reused,
    )
