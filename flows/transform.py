"""Run the dbt project (staging -> intermediate -> marts) against the private warehouse."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.settings import Settings

if TYPE_CHECKING:
    from models.params import DeclaredFeature, Params

log = logging.getLogger(__name__)


@dataclass
class DbtReport:
    success: bool
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    warned: int = 0
    failures: list[str] = field(default_factory=list)


def dbt_args(command: str | list[str], settings: Settings, as_of: date | None = None) -> list[str]:
    """A dbt command line against this project, profile, target and state directory."""
    args = [command] if isinstance(command, str) else list(command)
    args += [
        "--project-dir",
        str(settings.dbt_project),
        "--profiles-dir",
        str(settings.profiles),
        "--target",
        settings.target,
        "--target-path",
        str(settings.home / "dbt" / "target"),
        "--log-path",
        str(settings.home / "dbt" / "logs"),
    ]
    if as_of is not None:
        variables = {"as_of": as_of.isoformat(), "label_horizon_days": settings.label_horizon_days}
        args += ["--vars", json.dumps(variables)]
    return args


@contextmanager
def dbt_env(settings: Settings) -> Iterator[None]:
    """profiles.yml reads these; dbt runs in-process, so they go into this process's env for
    the duration of the dbt call and are restored afterwards."""
    wanted = settings.dbt_env()
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


SNAPSHOT_MODEL = "account_snapshots"


def manifest_path(settings: Settings) -> Path:
    """Where the last dbt command of this state directory wrote its manifest."""
    return settings.home / "dbt" / "target" / "manifest.json"


def declared_features(manifest: Path, model: str = SNAPSHOT_MODEL) -> dict[str, DeclaredFeature]:
    """Features declared on the columns of `model` in the dbt project's YAML.

    A column becomes a model feature when its YAML entry says so in `meta` (under `config:`
    or at the column's top level):

        - name: mrr_per_seat_usd
          data_type: double precision
          config:
            meta:
              feature: numeric                      # or categorical
              reason: {group: pricing, text: "{money} per seat"}

    so an analyst adds a feature with one SQL edit and this one YAML entry. Read from the
    manifest dbt writes on every build; no manifest (dbt never ran here) means none declared.
    """
    from models.params import DeclaredFeature

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


def model_params(settings: Settings) -> Params:
    """The params file (`params_path`, default models/params.yaml) plus the features declared
    in the dbt project."""
    from models.params import load_params

    return load_params(settings.params_path).with_declared_features(
        declared_features(manifest_path(settings))
    )


def summarize(result: Any) -> DbtReport:
    """Count node statuses of a dbtRunnerResult."""
    report = DbtReport(success=bool(result.success))
    for node in getattr(result.result, "results", None) or []:
        status = str(getattr(node.status, "value", node.status)).lower()
        if status in {"success", "pass"}:
            report.passed += 1
        elif status in {"error", "fail", "runtime error"}:
            report.failed += 1
            report.failures.append(f"{node.node.unique_id}: {node.message}")
        elif status == "warn":
            report.warned += 1
        else:
            report.skipped += 1
    return report
