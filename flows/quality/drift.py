"""The drift gate: population stability of every champion feature, training rows vs the rows
to score, through the drift suites (`meta.edge: drift`).

The training side of PSI (bins and counts per feature) is kept in the model's folder in the
registry, written when the model is trained: a daily run reads only the rows it scores, and a
model copied to another warehouse (a champion trained elsewhere) brings its training
distribution. The maths is `models/psi.py`.

Like with like: the reference keeps the bins and counts of every training snapshot date (one
row per account and date), not one pool of the whole window, whose early dates hold fewer and
younger accounts with shorter histories. Each feature is compared with the training snapshot
it resembles most (the model learned from all of them), so a feature that moves between dates
by construction (a days-since that is longer on a Sunday, a rule re-derived at each date) is
not a drift, while a real shift, unlike every date, is. Features that grow one a day with the
calendar (ages, tenures) are compared with the latest snapshot moved by the days between its
date and the date scored: detected from the training snapshots when the model is trained
(`models.psi.calendar_features`) or declared on the dbt column (`meta: {drift: age}`; `drift:
as_is` switches the move off; `drift: rederived` marks a value of a rule re-derived from the
whole population at each date, such as usual companions, which steps for many accounts when the
rule does: the suite holds those to bars of their own, by `drift_kind`). Each feature's PSI is judged against what chance gives at these
row counts (`chance_psi`); the suites' thresholds apply to `psi_beyond_chance`.
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
from flows.transform.manifest import FEATURES_TABLE, SNAPSHOT_MODEL, current_manifest
from flows.warehouse import Warehouse
from models.features import as_bool
from models.psi import (
    CHANCE_QUANTILE,
    Prepared,
    calendar_features,
    days_between,
    prepared,
    stability_against,
)
from models.psi import reference as drift_reference

log = logging.getLogger(__name__)

REFERENCE_FORMAT = 2  # 2: the latest training snapshot, its date and calendar features
ID_COLUMN = "account_id"
DATE_COLUMN = "snapshot_date"
# meta.drift on a dbt column: `age` grows one a day (compared moved by the days since), `as_is`
# is never moved, `rederived` comes from a rule re-derived from the whole population at each
# date (it steps when the rule does; its suite holds such features to their own bars).
CALENDAR_DECLARATIONS = ("age", "as_is", "rederived")
FEATURE_MODELS = (SNAPSHOT_MODEL, FEATURES_TABLE.split(".")[-1])  # the models features come from


def check_drift(settings: Settings, as_of: date, run_id: str | None = None) -> list[GateResult]:
    """PSI per champion feature, training rows vs the rows to score, through the drift suites.

    Training rows: the active, label-complete snapshots of the champion's training window (all
    of them when the window finds none), reduced to bins and counts per snapshot date and kept
    in the model's registry folder at training (`keep_drift_references`; computed from the
    warehouse here for a model saved without them, or with a pooled reference of an older
    version). Judged by `judge_drift`. No champion, or one that needs columns the marts no
    longer have (train_model replaces it in this run): nothing to compare, nothing checked.
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
    declared = declared_calendar(settings)
    specs = [(path, load_suite(path).get("meta", {}).get("psi", {})) for path in suites]
    with Warehouse.from_settings(settings).connect(read_only=True) as con:
        cols = ", ".join(f'"{f}"' for f in [ID_COLUMN, *numeric, *categorical])
        base = f"select {cols} from {FEATURES_TABLE} where is_active"
        score = con.execute(base + f" and {DATE_COLUMN} = ?", [as_of]).df()
        references = {}
        for bins in {int(psi.get("bins", 10)) for _, psi in specs}:
            kept = _drift_reference(settings, version, numeric, categorical, bins)
            if kept is None or kept.get("format") != REFERENCE_FORMAT or not kept.get("dates"):
                rows = con.execute(
                    f"select {DATE_COLUMN}, {cols} from {FEATURES_TABLE} "
                    "where is_active and is_label_complete"
                ).df()
                rows = _training_rows(rows, meta.get("training_window", {}))
                if not rows.empty or kept is None:
                    kept = _keep_drift_reference(
                        settings, version, rows, numeric, categorical, bins, declared
                    )
            references[bins] = kept
    params = {"as_of": pd.Timestamp(as_of), "model_version": version}
    results = []
    for path, psi in specs:
        ref = references[int(psi.get("bins", 10))]
        frame = judge_drift(
            ref,
            score,
            numeric,
            categorical,
            as_of,
            declared,
            epsilon=float(psi.get("epsilon", 1e-4)),
            quantile=float(psi.get("chance_quantile", CHANCE_QUANTILE)),
        )
        result = validate_frame(frame, path, parameters=params)
        result.preview = jsonable(frame.sort_values("psi", ascending=False).to_dict("records"))
        results.append(result)
    report_gate(settings, run_id, results, as_of)
    return enforce_all(results)


def judge_drift(
    ref: dict[str, Any],
    score: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    as_of: date,
    declared: dict[str, str] | None = None,
    *,
    epsilon: float = 1e-4,
    quantile: float = CHANCE_QUANTILE,
) -> pd.DataFrame:
    """The drift suites' frame: one row per feature, its PSI against the training snapshot it
    resembles most (`reference_date`), with the chance level at these counts; features that
    grow with the calendar are moved by the days between that snapshot and `as_of`.

    The model learned from every snapshot of its training window, so a feature drifts only
    when today's rows are unlike all of them: a feature that moves between training dates by
    construction (a days-since that is longer on a Sunday, a rule re-derived at each date) is
    compared with the date that looks most like today; a real shift is unlike every date. An
    age is compared with the latest date only, moved by the days since: moved by other
    amounts from other dates, it would match almost anything.

    A reference kept before references had dates (a model saved by an older version, whose
    training rows this warehouse does not hold) pools its whole training window: its chance
    level counts at most as many independent rows as are scored now, and features that grow
    with the calendar cannot be compared like with like, so they are shown, not judged."""
    declared = declared or {}
    ages = [
        f
        for f in numeric
        if declared.get(f) == "age" or (f in ref.get("calendar", {}) and declared.get(f) != "as_is")
    ]
    ready = prepared(score, numeric, categorical)
    frames: list[pd.DataFrame] = []
    snapshots = ref.get("dates") or [ref]
    compared: dict[Any, tuple[dict[str, Any], dict[str, int]]] = {}
    for snapshot in snapshots:
        when = snapshot.get("snapshot_date")
        if when is None:  # pooled over the window: an older version's reference
            snapshot = {**snapshot, "effective_rows": min(int(snapshot["rows"]), len(score) or 1)}
        shift = {f: days_between(when, as_of) for f in ages} if when else {}
        compared[when] = (snapshot, shift)
        # no example accounts yet: they are named for the snapshot each feature is judged
        # against only (below), not for every snapshot it was compared with
        frame = stability_against(
            snapshot,
            score,
            numeric,
            categorical,
            epsilon,
            quantile=quantile,
            shift_days=shift,
            ready=ready,
        )
        if snapshot is not snapshots[-1]:  # an age is compared with the latest date only
            frame = frame.loc[~frame["feature"].isin(ages)]
        frames.append(frame.assign(reference_date=when, _order=-len(frames)))
    every = pd.concat(frames, ignore_index=True)
    every["_beyond"] = every["psi_beyond_chance"].fillna(float("inf"))
    every["_psi"] = every["psi"].fillna(float("inf"))
    nearest = (
        every.sort_values(["_beyond", "_psi", "_order"], kind="stable")
        .drop_duplicates("feature")
        .set_index("feature")
        .reindex(frames[-1]["feature"])
        .reset_index()
        .drop(columns=["_beyond", "_psi", "_order"])
    )
    if ID_COLUMN in score.columns:
        _name_examples(nearest, compared, score, numeric, epsilon, quantile, ready)
    nearest["drift_kind"] = [
        "age" if f in ages else "rederived" if declared.get(f) == "rederived" else "level"
        for f in nearest["feature"]
    ]
    if not ref.get("dates") and ref.get("snapshot_date") is None and ages:
        log.warning(
            "drift reference of this champion has no date (kept by an older version): %s not "
            "judged (they grow with the calendar); retrain to compare them like with like",
            ", ".join(ages),
        )
        nearest.loc[nearest["feature"].isin(ages), "psi_beyond_chance"] = 0.0
    return nearest


def _name_examples(
    nearest: pd.DataFrame,
    compared: dict[Any, tuple[dict[str, Any], dict[str, int]]],
    score: pd.DataFrame,
    numeric: list[str],
    epsilon: float,
    quantile: float,
    ready: Prepared,
) -> None:
    """`example_accounts` of each drifted feature (psi beyond chance), from the snapshot it is
    judged against: one pass per such snapshot over its drifted features only (at 1M accounts,
    naming examples against every training snapshot cost over a minute)."""
    drifted = nearest["psi_beyond_chance"].fillna(0) > 0
    for when, rows in nearest.loc[drifted].groupby("reference_date", dropna=False, sort=False):
        snapshot, shift = compared[None if pd.isna(when) else when]
        features = set(rows["feature"])
        named = stability_against(
            snapshot,
            score,
            [f for f in numeric if f in features],
            [f for f in features if f not in numeric],
            epsilon,
            quantile=quantile,
            shift_days=shift,
            ids=score[ID_COLUMN],
            ready=ready,
        ).set_index("feature")["example_accounts"]
        nearest.loc[rows.index, "example_accounts"] = rows["feature"].map(named).to_numpy()


def declared_calendar(settings: Settings) -> dict[str, str]:
    """Features whose dbt column says how drift compares them (`meta.drift`: age | as_is),
    read from the manifest of the dbt project as it is now (`current_manifest`: parsed again
    when the project changed since the pipeline's last build, as training reads it)."""
    path = current_manifest(settings)
    try:
        nodes = json.loads(path.read_text(encoding="utf-8")).get("nodes", {})
    except (OSError, ValueError):
        return {}
    declared: dict[str, str] = {}
    for node in nodes.values():
        if node.get("resource_type") != "model" or node.get("name") not in FEATURE_MODELS:
            continue
        for name, column in (node.get("columns") or {}).items():
            meta = {
                **(column.get("meta") or {}),
                **((column.get("config") or {}).get("meta") or {}),
            }
            value = meta.get("drift")
            if value is None:
                continue
            if value not in CALENDAR_DECLARATIONS:
                where = node.get("patch_path") or node.get("original_file_path")
                raise ValueError(
                    f"{where}: column {node.get('name')}.{name} has meta.drift={value!r}; "
                    f"expected one of {', '.join(CALENDAR_DECLARATIONS)}"
                )
            declared[name] = value
    return declared


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
    keep = pd.to_datetime(frame[DATE_COLUMN]).between(
        pd.Timestamp(window.get("start", "1900-01-01")),
        pd.Timestamp(window.get("end", "2999-12-31")),
    )
    return frame.loc[keep] if keep.any() else frame


def build_reference(
    train: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    bins: int,
    declared: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The drift reference of training rows (several snapshot dates): bins and counts per
    snapshot date (`dates`; the latest date's also at the top level, with its date), and the
    features measured to grow with the calendar (`calendar`)."""
    declared = declared or {}
    if train.empty or DATE_COLUMN not in train.columns:
        ref = drift_reference(train, numeric, categorical, bins)
        return {**ref, "format": REFERENCE_FORMAT, "snapshot_date": None, "calendar": {}}
    when = pd.to_datetime(train[DATE_COLUMN])
    dates = [
        {
            "snapshot_date": pd.Timestamp(day).date().isoformat(),
            **drift_reference(train.loc[when == day], numeric, categorical, bins),
        }
        for day in sorted(when.unique())
    ]
    undeclared = [f for f in numeric if f not in declared]
    return {
        **dates[-1],
        "format": REFERENCE_FORMAT,
        "calendar": calendar_features(train, undeclared, DATE_COLUMN, ID_COLUMN),
        "dates": dates,
    }


def _keep_drift_reference(
    settings: Settings,
    version: str,
    train: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    bins: int,
    declared: dict[str, str],
) -> dict[str, Any]:
    ref = build_reference(train, numeric, categorical, bins, declared)
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
    declared = declared_calendar(settings)
    for bins in {int(load_suite(p).get("meta", {}).get("psi", {}).get("bins", 10)) for p in suites}:
        _keep_drift_reference(settings, version, train, numeric, categorical, bins, declared)
