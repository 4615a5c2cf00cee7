"""`dbt build` of the project in this process: what it selects, its command line, its report.

The project is parsed once per process (flows/transform/parse.py) and the build selects what
changed since the last successful build (flows/transform/selection.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from flows.errors import DbtBuildFailed
from flows.faults import armed, crash_point
from flows.files import write_atomic
from flows.settings import Settings
from flows.transform.command import (
    dbt_args,
    dbt_env,
    dbt_project_hash,
    dbt_runner,
    parsed_project_stamp,
)
from flows.transform.parse import parsed_project
from flows.transform.selection import forget_build, plan_build, remember_build

__all__ = [
    "DbtReport",
    "dbt_args",
    "dbt_env",
    "dbt_project_hash",
    "parsed_project_stamp",
    "run_dbt_build",
    "run_dbt_parse",
]

log = logging.getLogger(__name__)

TEST_TYPES = {"test", "unit_test"}


@dataclass
class DbtReport:
    success: bool
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    warned: int = 0
    failures: list[str] = field(default_factory=list)
    # seconds this call spent parsing the project (0.0: the process's parse was reused;
    # None: not known, dbt parsed inside prefect-dbt's runner)
    parse_s: float | None = None
    selection: str = "all"  # the --select of the build, "all" for every node
    models_run: int = 0  # models dbt ran (passed, failed or warned; not skipped)
    tests_run: int = 0  # data and unit tests dbt ran
    # what the data tests of incremental models checked: "changed" (the dates and days the
    # build rewrote) or "all" (whole tables: a full build, or the last build did not succeed)
    tests_scope: str = "all"


def summarize(result: Any) -> DbtReport:
    """Count node statuses of a dbtRunnerResult."""
    report = DbtReport(success=bool(result.success))
    for node in getattr(result.result, "results", None) or []:
        status = str(getattr(node.status, "value", node.status)).lower()
        kind = str(getattr(node.node, "resource_type", ""))
        kind = str(getattr(node.node.resource_type, "value", kind)).lower()
        if kind == "operation" and status not in {"error", "fail", "runtime error"}:
            continue  # a hook of the project (on-run-start), not a node of the build
        if status in {"success", "pass"}:
            report.passed += 1
        elif status in {"error", "fail", "runtime error"}:
            report.failed += 1
            report.failures.append(f"{node.node.unique_id}: {node.message}")
        elif status == "warn":
            report.warned += 1
        else:
            report.skipped += 1
            continue
        if kind == "model":
            report.models_run += 1
        elif kind in TEST_TYPES:
            report.tests_run += 1
    return report


def _full_build_reason(settings: Settings) -> str | None:
    """Why this build must build every node whatever changed, if it must."""
    if settings.full_refresh:
        return "--full-refresh"
    if settings.freshness == "off":
        return "EXPANSION_FRESHNESS=off"
    if getattr(settings, "dbt_build", "changed") == "all":
        return "EXPANSION_DBT_BUILD=all"
    return None


def run_dbt_build(settings: Settings, as_of: date) -> DbtReport:
    """`dbt build` (seeds, models, tests, unit tests) in this process, of what changed.

    By default through dbt's own `dbtRunner`; with `EXPANSION_DBT_NODE_TASKS=true` through
    prefect-dbt's `PrefectDbtRunner`, which shows one Prefect task per dbt node. That view
    costs about a minute per build on the demo project (218 nodes), leaves DuckDB objects
    alive at interpreter exit, and parses the project again (prefect-dbt 0.7 does not hand
    a manifest to dbt), so it is opt-in.
    """
    parsed = parsed_project(settings)
    plan = plan_build(settings, parsed.manifest, everything=_full_build_reason(settings))
    if plan.select is None:
        forget_build(settings)  # if this fails, the next build builds everything too
    # the data tests of a daily build check what it rebuilt, unless the last build did not
    # succeed (macros/get_where_subquery.sql): what it wrote was not all tested
    unfinished = settings.home / "dbt" / "build_unfinished"
    scope = "changed" if plan.select is not None and not unfinished.exists() else "all"
    args = dbt_args("build", settings, as_of, {"data_tests_scope": scope})
    log.info("dbt build of %s: %s; data tests: %s", plan.selection, plan.reason, scope)
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
    if plan.select is not None:
        args += ["--select", *plan.select]
    crash_point("dbt.before_build")
    write_atomic(unfinished, f"{datetime.now(UTC).isoformat(timespec='seconds')} {as_of}")
    stamp = parsed_project_stamp(settings)
    stamp.unlink(missing_ok=True)  # the manifest is rewritten: known again once dbt succeeded
    if plan.select == []:
        report = DbtReport(success=True)
    else:
        with dbt_env(settings):
            result = _invoke_dbt(settings, args, parsed.manifest)
        report = summarize(result)
        if not report.success:
            detail = "\n".join(report.failures) or str(getattr(result, "exception", "") or "")
            raise DbtBuildFailed(f"dbt build failed ({report.failed} nodes):\n{detail}")
    report.parse_s = None if settings.dbt_node_tasks else parsed.seconds
    report.selection = plan.selection
    report.tests_scope = scope
    write_atomic(stamp, project)
    if not skip_unit:
        write_atomic(passed, project)
    remember_build(settings, plan, as_of)
    unfinished.unlink(missing_ok=True)
    crash_point("dbt.built")
    return report


def run_dbt_parse(settings: Settings) -> None:
    """`dbt parse` in this process: rewrites the manifest of the state directory's dbt target
    from the project files as they are now (no warehouse query, no model built)."""
    parsed_project(settings, reparse=True)


MID_BUILD_NODE = "stg_usage__usage_daily"  # incremental: persisted, its marts not yet built


def _crash_mid_build(event: Any) -> None:
    """dbt event callback for the `dbt.mid_build` crash point."""
    if event.info.name != "NodeFinished":
        return
    node = getattr(event.data, "node_info", None)
    if node is not None and node.node_name == MID_BUILD_NODE and node.node_status == "success":
        crash_point("dbt.mid_build")


def _invoke_dbt(settings: Settings, args: list[str], manifest: Any = None) -> Any:
    """dbt with `args`, on `manifest` (parsed by flows/transform/parse.py) when given."""
    if settings.dbt_node_tasks:
        from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

        runner = PrefectDbtRunner(
            manifest=manifest,
            settings=PrefectDbtSettings(
                project_dir=settings.dbt_project, profiles_dir=settings.profiles
            ),
            raise_on_failure=False,
        )
        return runner.invoke(args)
    callbacks = [_crash_mid_build] if armed("dbt.mid_build") else []
    return dbt_runner(manifest, callbacks).invoke(args)
