"""The drift gate: population stability of every champion feature, training rows vs the rows
to score, through the drift suites (`meta.edge: drift`).

The training side of PSI (bins and counts per feature) is kept in the model's folder in the
registry, written when the model is trained: a daily run reads only the rows it scores, and a
model copied to another warehouse (a champion trained elsewhere) brings its training
distribution. The maths is `models/psi.py`.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from flows.files import write_atomic
from flows.quality.champion import features_gone
from flows.quality.gates import report_gate, suites_of
from flows.quality.gx import validate_frame
from flows.quality.results import GateResult, enforce_all, jsonable
from flows.quality.suites import load_suite
from flows.registry import champion_version, model_dir, read_metadata
from flows.settings import Settings
from flows.transform.manifest import FEATURES_TABLE
from flows.warehouse import Warehouse
from models.features import as_bool
from models.psi import reference as drift_reference
from models.psi import stability_against

log = logging.getLogger(__name__)


def check_drift(settings: Settings, as_of: date, run_id: str | None = None) -> list[GateResult]:
    """PSI per champion feature, training rows vs the rows to score, through the drift suites.

    Training rows: active, label-complete snapshots in the champion's training window (all
    such rows when the window finds none), reduced to bins and counts kept in the model's
    registry folder at training (`keep_drift_references`; computed from the warehouse here
    for a model saved without them). No champion, or one that needs columns the marts no longer
    have (train_model replaces it in this run): nothing to compare, nothing checked.
    """

    version = champion_version(settings.registry)
    suites = suites_of(settings, "drift")
    if version is None or not suites:
        log.info("drift check skipped: %s", "no champion model" if suites else "no drift suite")
        return []
    gone = features_gone(settings, version)
    if gone:  # renamed or dropped in dbt: train_model replaces this champion
        log.warning(
            "drift check skipped: champion %s needs %s, no longer in the marts",
            version,
            ", ".join(gone),
        )
        return []
    meta = read_metadata(settings.registry, version)
    numeric, categorical = _model_features(meta)
    window = meta.get("training_window", {})
    with Warehouse.from_settings(settings).connect(read_only=True) as con:
        cols = ", ".join(f'"{f}"' for f in [*numeric, *categorical]) or "1 as _row"
        base = f"select {cols} from {FEATURES_TABLE} where is_active"
        score = con.execute(base + " and snapshot_date = ?", [as_of]).df()
        specs = [(path, load_suite(path).get("meta", {}).get("psi", {})) for path in suites]
        references = {
            bins: _drift_reference(settings, version, numeric, categorical, bins)
            or _keep_drift_reference(
                settings,
                version,
                _training_rows(
                    con.execute(
                        f"select snapshot_date, {cols} from {FEATURES_TABLE} "
                        "where is_active and is_label_complete"
                    ).df(),
                    window,
                ),
                numeric,
                categorical,
                bins,
            )
            for bins in {int(psi.get("bins", 10)) for _, psi in specs}
        }
    params = {"as_of": pd.Timestamp(as_of), "model_version": version}
    results = []
    for path, psi in specs:
        frame = stability_against(
            references[int(psi.get("bins", 10))],
            score,
            numeric,
            categorical,
            epsilon=float(psi.get("epsilon", 1e-4)),
        )
        result = validate_frame(frame, path, parameters=params)
        result.preview = jsonable(frame.sort_values("psi", ascending=False).to_dict("records"))
        results.append(result)
    report_gate(settings, run_id, results, as_of)
    return enforce_all(results)


def _drift_reference_path(settings: Settings, version: str, bins: int) -> Path:

    return model_dir(settings.registry, version) / f"drift_reference_{bins}bins.json"


def _drift_reference(
    settings: Settings, version: str, numeric: list[str], categorical: list[str], bins: int
) -> dict[str, Any] | None:
    """The kept reference of `version`, if it covers these features."""
    path = _drift_reference_path(settings, version, bins)
    try:
        kept: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # none kept (a model saved before references were) or unreadable
    return kept if set(kept.get("features", {})) >= {*numeric, *categorical} else None


def _model_features(meta: dict[str, Any]) -> tuple[list[str], list[str]]:
    """A saved model's (numeric, categorical) features, from its metadata."""
    features = list(dict.fromkeys(meta["features"]))
    categorical = [f for f in meta.get("categorical_features", []) if f in features]
    return [f for f in features if f not in categorical], categorical


def _training_rows(frame: pd.DataFrame, window: dict[str, Any]) -> pd.DataFrame:
    """Rows of `frame` in the model's training window (all of them when it holds none)."""
    keep = pd.to_datetime(frame["snapshot_date"]).between(
        pd.Timestamp(window.get("start", "1900-01-01")),
        pd.Timestamp(window.get("end", "2999-12-31")),
    )
    return frame.loc[keep] if keep.any() else frame


def _keep_drift_reference(
    settings: Settings,
    version: str,
    train: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    bins: int,
) -> dict[str, Any]:
    ref = drift_reference(train, numeric, categorical, bins)
    write_atomic(_drift_reference_path(settings, version, bins), json.dumps(ref))
    return ref


def keep_drift_references(settings: Settings, version: str, snapshots: pd.DataFrame) -> None:
    """At training: the model's drift references, one per bin count the drift suites use."""

    suites = suites_of(settings, "drift")
    if not suites:
        return
    meta = read_metadata(settings.registry, version)
    numeric, categorical = _model_features(meta)
    rows = snapshots.loc[
        as_bool(snapshots["is_active"], "is_active")
        & as_bool(snapshots["is_label_complete"], "is_label_complete")
    ]
    train = _training_rows(rows, meta.get("training_window", {}))
    for bins in {int(load_suite(p).get("meta", {}).get("psi", {}).get("bins", 10)) for p in suites}:
        _keep_drift_reference(settings, version, train, numeric, categorical, bins)
