"""A dbt command against this project: its command line, environment and project identity.

Everything here is shared by the parse (flows/transform/parse.py), the freshness check and
the build: they must agree on the project, profile, target, state directory and vars.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

from flows.settings import Settings

# dbt's lines (node START/OK, warnings, errors) reach Python logging through this logger:
# the run's log file gets them, the console of `expansion run` does not (flows/logs.py), and
# dbt's own debug log stays in <home>/dbt/logs/dbt.log. Not one of the loggers Prefect sends
# to its API: a build is hundreds of lines.
DBT_LOGGER = "dbt"
_DBT_LEVELS = {"info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}

# dbt's own console stays silent (its lines come through DBT_LOGGER instead), without colour
# codes; its debug log file keeps everything, without colour codes either.
LOG_FLAGS = (
    "--log-level",
    "none",
    "--log-level-file",
    "debug",
    "--no-use-colors",
    "--no-use-colors-file",
)


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


def dbt_args(
    command: str | list[str],
    settings: Settings,
    as_of: date | None = None,
    extra_vars: dict[str, object] | None = None,
) -> list[str]:
    """A dbt command line against this project, profile, target and state directory;
    `extra_vars` are vars of this command only, read when SQL is rendered (like as_of, never
    part of the parse)."""
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
        *LOG_FLAGS,
    ]
    return [*args, "--vars", json.dumps({**dbt_vars(settings, as_of), **(extra_vars or {})})]


def dbt_log_callback(run_id: str | None = None) -> Callable[[Any], None]:
    """A dbtRunner callback that logs dbt's info, warning and error events to DBT_LOGGER,
    tagged with the run id of the caller (dbt runs nodes in threads of its own, which do not
    see the flow run's context)."""
    from flows.logs import current_run_id

    logger = logging.getLogger(DBT_LOGGER)
    extra = {"run_id": run_id or current_run_id()}

    def log_event(event: Any) -> None:
        level = _DBT_LEVELS.get(event.info.level)
        if level is not None and event.info.msg and logger.isEnabledFor(level):
            logger.log(level, "%s", event.info.msg, extra=extra)

    return log_event


def dbt_runner(manifest: Any = None, callbacks: Sequence[Callable[[Any], None]] = ()) -> Any:
    """dbt's `dbtRunner` on `manifest` (when given), its lines logged (`dbt_log_callback`)."""
    from dbt.cli.main import dbtRunner

    return dbtRunner(manifest=manifest, callbacks=[dbt_log_callback(), *callbacks])


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
