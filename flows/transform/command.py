"""A dbt command against this project: its command line, environment and project identity.

Everything here is shared by the parse (flows/transform/parse.py), the freshness check and
the build: they must agree on the project, profile, target, state directory and vars.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from importlib.metadata import version
from pathlib import Path

from flows.settings import Settings


def dbt_vars(settings: Settings, as_of: date | None = None) -> dict[str, object]:
    """The --vars of every dbt command of a run. All but `as_of` are the same for every
    command and every date: the parse is made with them (no as_of), so dbt's partial parsing
    still holds the next day, and a parsed manifest serves every as_of (flows/transform/parse.py)."""
    variables: dict[str, object] = {
        "reporting_currency": settings.reporting_currency,
        "label_horizon_days": settings.label_horizon_days,
    }
    if as_of is not None:
        variables["as_of"] = as_of.isoformat()
    return variables


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
    return [*args, "--vars", json.dumps(dbt_vars(settings, as_of))]


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


def parsed_project_stamp(settings: Settings) -> Path:
    """Holds the `dbt_project_hash` of the project the manifest in the state directory's
    dbt target was parsed from (written after a dbt build or parse succeeded)."""
    return settings.home / "dbt" / "manifest_project"
