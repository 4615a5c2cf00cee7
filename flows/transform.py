"""Run the dbt project (staging -> intermediate -> marts) against the private warehouse."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flows.settings import Settings


@dataclass
class DbtReport:
    success: bool
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    warned: int = 0
    failures: list[str] = field(default_factory=list)


class DbtBuildFailed(RuntimeError):
    """dbt build had failing models or tests."""


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
