"""One parse of the dbt project per process, shared by every dbt command of the process.

A parse costs seconds (about 9 s for this project on the benchmark machine), and dbt parses
again whenever --vars differ from the last parse. A run's freshness check and build, and the
builds of every date of a backfill, differ only in the `as_of` var, so the project is parsed
once here WITHOUT as_of and the parsed manifest is handed to each command
(`dbtRunner(manifest=...)`; dbt-core 1.11 `cli/requires.py::setup_manifest` then skips the
parse and reads vars from that command's own --vars when it renders SQL).

That is sound because vars reach this project only through SQL bodies and macros, which dbt
renders per command; none decides a ref, a source or a config at parse time
(tests/flows/test_dbt_daily_build.py builds a date on a reused manifest and compares it, and
its graph, with a fresh parse and full build at that date). Since the vars of the parse
are the same every day, dbt's partial parsing (`partial_parse.msgpack` in the target) also
makes the next process's parse a short one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from flows.errors import DbtBuildFailed
from flows.files import write_atomic
from flows.settings import Settings
from flows.transform.command import (
    dbt_args,
    dbt_env,
    dbt_project_hash,
    dbt_runner,
    parsed_project_stamp,
)

log = logging.getLogger(__name__)

# The manifest parsed by this process, under the key of what it was parsed from. One entry:
# a process works on one project and state directory at a time.
_parsed: dict[str, Any] = {}
# Seconds of every parse this process made, in order (read by the benchmark and tests).
PARSES: list[float] = []


@dataclass(frozen=True)
class Parsed:
    """A parsed dbt manifest and what this call spent parsing it (0.0: reused)."""

    manifest: Any  # dbt.contracts.graph.manifest.Manifest
    seconds: float


def _key(settings: Settings, project: str) -> str:
    """What a parse depends on: the project files, the command line (project, profile,
    target, target path, vars without as_of) and the profile's environment."""
    what = [project, dbt_args("parse", settings), sorted(settings.dbt_env().items())]
    return hashlib.sha256(json.dumps(what, default=str).encode()).hexdigest()


def parsed_project(settings: Settings, *, reparse: bool = False) -> Parsed:
    """The manifest of the dbt project as it is now: parsed by this process before (and the
    project, profile and vars unchanged since), or parsed now with `dbt parse`, which also
    writes it to the state directory's dbt target (stamped with the project hash for
    flows/transform/manifest.py)."""
    project = dbt_project_hash(settings)
    key = _key(settings, project)
    manifest = None if reparse else _parsed.get(key)
    if manifest is not None:
        _as_parsed(manifest)
        return Parsed(manifest, 0.0)
    stamp = parsed_project_stamp(settings)
    stamp.unlink(missing_ok=True)
    start = time.perf_counter()
    with dbt_env(settings):
        result = dbt_runner().invoke(dbt_args("parse", settings))
    seconds = round(time.perf_counter() - start, 2)
    if not result.success:
        why = getattr(result, "exception", None) or f"see {settings.home / 'dbt' / 'logs'}"
        raise DbtBuildFailed(f"dbt parse of {settings.dbt_project} failed: {why}")
    write_atomic(stamp, project)
    _parsed.clear()
    _parsed[key] = result.result
    PARSES.append(seconds)
    log.info("dbt parse of %s: %.1f s", settings.dbt_project, seconds)
    return Parsed(result.result, seconds)


def forget_parse() -> None:
    """Drop the manifest this process keeps (the next command parses again)."""
    _parsed.clear()


def _as_parsed(manifest: Any) -> None:
    """Undo what compiling left on the nodes, as a fresh parse has them. A build compiles
    every node it runs again, but dbt injects an ephemeral model's CTEs only into a node not
    marked as done (`compilation.py::_recursively_prepend_ctes`), so a reused node keeps no
    mark from the last command."""
    for node in manifest.nodes.values():
        if getattr(node, "compiled", False):
            node.compiled = False
            node.compiled_code = None
            node.extra_ctes_injected = False
            node.extra_ctes = []
