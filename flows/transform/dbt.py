"""`dbt build` of the project in this process: its command line, environment and report."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

from flows.errors import DbtBuildFailed
from flows.faults import armed, crash_point
from flows.files import write_atomic
from flows.settings import Settings

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
    variables: dict[str, object] = {"reporting_currency": settings.reporting_currency}
    if as_of is not None:
        variables |= {"as_of": as_of.isoformat(), "label_horizon_days": settings.label_horizon_days}
    return [*args, "--vars", json.dumps(variables)]


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


def run_dbt_build(settings: Settings, as_of: date) -> DbtReport:
    """`dbt build` (seeds, models, tests, unit tests) in this process.

    By default through dbt's own `dbtRunner`; with `EXPANSION_DBT_NODE_TASKS=true` through
    prefect-dbt's `PrefectDbtRunner`, which shows one Prefect task per dbt node. That view
    costs about a minute per build on the demo project (218 nodes) and leaves DuckDB objects
    alive at interpreter exit, so it is opt-in.
    """
    args = dbt_args("build", settings, as_of)
    if settings.full_refresh:  # raw was reloaded from scratch: so is every incremental model
        args.append("--full-refresh")
    # Unit tests check SQL logic on fixed inputs, not the data: they run when the dbt project
    # (or dbt, DuckDB) changed since they last passed here, and on a full refresh.
    project = dbt_project_hash(settings)
    passed = settings.home / "dbt" / "unit_tests_passed"
    skip_unit = not settings.full_refresh and passed.is_file() and passed.read_text() == project
    if skip_unit:
        args += ["--exclude", "test_type:unit"]
        log.info("dbt unit tests skipped: they passed on this dbt project (%s)", project[:12])
    crash_point("dbt.before_build")
    parsed = parsed_project_stamp(settings)
    parsed.unlink(missing_ok=True)  # the manifest is rewritten: known again once dbt succeeded
    with dbt_env(settings):
        result = _invoke_dbt(settings, args)
    report = summarize(result)
    if not report.success:
        detail = "\n".join(report.failures) or str(getattr(result, "exception", "") or "")
        raise DbtBuildFailed(f"dbt build failed ({report.failed} nodes):\n{detail}")
    write_atomic(parsed, project)
    if not skip_unit:
        write_atomic(passed, project)
    crash_point("dbt.built")
    return report


def parsed_project_stamp(settings: Settings) -> Path:
    """Holds the `dbt_project_hash` of the project the manifest in the state directory's
    dbt target was parsed from (written after a dbt build or parse succeeded)."""
    return settings.home / "dbt" / "manifest_project"


def run_dbt_parse(settings: Settings) -> None:
    """`dbt parse` in this process: rewrites the manifest of the state directory's dbt target
    from the project files as they are now (no warehouse query, no model built)."""
    project = dbt_project_hash(settings)
    parsed = parsed_project_stamp(settings)
    parsed.unlink(missing_ok=True)
    from dbt.cli.main import dbtRunner

    with dbt_env(settings):
        result = dbtRunner().invoke(dbt_args("parse", settings))
    if not result.success:
        why = getattr(result, "exception", None) or f"see {settings.home / 'dbt' / 'logs'}"
        raise DbtBuildFailed(f"dbt parse of {settings.dbt_project} failed: {why}")
    write_atomic(parsed, project)


def dbt_project_hash(settings: Settings) -> str:
    """Every file of the dbt project (bar its build output) plus the dbt and DuckDB versions."""

    digest = hashlib.sha256()
    for name in ("dbt-core", "dbt-duckdb", "duckdb"):
        digest.update(f"{name}=={version(name)}\n".encode())
    root = settings.dbt_project
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if path.is_file() and parts[0] not in {"target", "logs", "dbt_packages"}:
            digest.update(f"{path.relative_to(root)}\n".encode())
            digest.update(path.read_bytes())
    # the profile too: a unit test runs on the target's adapter
    digest.update((settings.profiles / "profiles.yml").read_bytes())
    return digest.hexdigest()


MID_BUILD_NODE = "stg_usage__usage_daily"  # incremental: persisted, its marts not yet built


def _crash_mid_build(event: Any) -> None:
    """dbt event callback for the `dbt.mid_build` crash point."""
    if event.info.name != "NodeFinished":
        return
    node = getattr(event.data, "node_info", None)
    if node is not None and node.node_name == MID_BUILD_NODE and node.node_status == "success":
        crash_point("dbt.mid_build")


def _invoke_dbt(settings: Settings, args: list[str]) -> Any:
    if settings.dbt_node_tasks:
        from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

        runner = PrefectDbtRunner(
            settings=PrefectDbtSettings(
                project_dir=settings.dbt_project, profiles_dir=settings.profiles
            ),
            raise_on_failure=False,
        )
        return runner.invoke(args)
    from dbt.cli.main import dbtRunner

    if armed("dbt.mid_build"):
        return dbtRunner(callbacks=[_crash_mid_build]).invoke(args)
    return dbtRunner().invoke(args)
