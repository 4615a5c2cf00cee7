"""The features the dbt project declares (`meta.feature` on columns of account_snapshots),
read from dbt's manifest, and the model parameters they complete.

The manifest read is the one in the state directory's dbt target, parsed again (`dbt parse`)
whenever the project's files differ from those it was written from: an analyst who adds a
feature and builds it with their own `dbt build` in dbt_project/ (which writes
dbt_project/target/) trains on it with `expansion train`, no pipeline build needed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from flows.settings import Settings
from flows.transform.command import dbt_project_hash, parsed_project_stamp
from flows.transform.dbt import run_dbt_parse
from flows.warehouse import Warehouse, table_columns
from models.business import load_business
from models.params import DeclaredFeature, Params, load_params

log = logging.getLogger(__name__)

SNAPSHOT_MODEL = "account_snapshots"
# What the model trains and scores on: account_snapshots plus one column per usage metric and
# statistic (`<metric>__<stat>`), pivoted by dbt from the metrics the business declares.
FEATURES_TABLE = "marts.account_features"


def manifest_path(settings: Settings) -> Path:
    """Where the last dbt command of this state directory wrote its manifest."""
    return settings.home / "dbt" / "target" / "manifest.json"


def current_manifest(settings: Settings) -> Path:
    """`manifest_path`, parsed again first when the dbt project (its files, the profile, the
    dbt and DuckDB versions: `dbt_project_hash`) is not the one the manifest was written from,
    or when there is none yet. The pipeline's own build leaves it current; a parse costs
    seconds and happens only after an edit."""
    path = manifest_path(settings)
    stamp = parsed_project_stamp(settings)
    if path.is_file() and stamp.is_file():
        if stamp.read_text(encoding="utf-8") == dbt_project_hash(settings):
            return path
        log.info("dbt project changed since %s was written: dbt parse", path)
    else:
        log.info("no manifest of the current dbt project at %s: dbt parse", path)
    run_dbt_parse(settings)
    return path


def declared_features(manifest: Path, model: str = SNAPSHOT_MODEL) -> dict[str, DeclaredFeature]:
    """Features declared on the columns of `model` in the dbt project's YAML.

    A column becomes a model feature when its YAML entry says so in `meta` (under `config:`
    or at the column's top level):

        - name: mrr_per_seat
          data_type: double precision
          config:
            meta:
              feature: numeric                      # or categorical
              reason: {group: pricing, text: "{money} per seat"}

    so an analyst adds a feature with one SQL edit and this one YAML entry. Read from the
    manifest dbt writes (`current_manifest`); no manifest means none declared.
    """

    if not manifest.exists():
        log.warning("no dbt manifest at %s: only the features in models/params.yaml", manifest)
        return {}
    nodes = json.loads(manifest.read_text(encoding="utf-8")).get("nodes", {})
    node = next(
        (n for n in nodes.values() if n.get("resource_type") == "model" and n["name"] == model),
        None,
    )
    if node is None:
        return {}
    where = node.get("patch_path") or node.get("original_file_path") or model
    declared: dict[str, DeclaredFeature] = {}
    for name, column in (node.get("columns") or {}).items():
        meta = {**(column.get("meta") or {}), **((column.get("config") or {}).get("meta") or {})}
        if "feature" not in meta:
            continue
        try:
            declared[name] = DeclaredFeature.model_validate(
                {"kind": meta["feature"], "reason": meta.get("reason")}
            )
        except ValueError as exc:
            raise ValueError(
                f"{where}: column {model}.{name} declares meta.feature but its meta is not "
                "`feature: numeric|categorical` with `reason: {group: <concept>, text: "
                f"<phrase>}}`: {exc}"
            ) from exc
    return declared


def feature_columns(settings: Settings) -> list[str]:
    """The columns of FEATURES_TABLE in the warehouse (none before dbt first built it)."""
    if not settings.warehouse.exists():
        return []
    with Warehouse.from_settings(settings).connect(read_only=True) as con:
        return list(table_columns(con, FEATURES_TABLE))


def model_params(settings: Settings) -> Params:
    """The params file (`params_path`, default models/params.yaml), plus the features declared
    in the dbt project, plus the usage features of every metric the business declares
    (`<metric>__<stat>` columns of FEATURES_TABLE) with reasons in the run's locale."""

    return (
        load_params(settings.params_path)
        .with_declared_features(declared_features(current_manifest(settings)))
        .with_usage_features(
            load_business(settings.business_file), feature_columns(settings), settings.locale
        )
    )
