"""The pipeline's `dbt build` runs the dbt unit tests only when they can have a new answer:
the dbt project (or dbt, DuckDB, the profile) changed since they last passed, or a full
refresh. Unit tests check SQL on fixed inputs, so a daily run on new data skips them.

It also builds on the process's one parse and selects what changed
(tests/flows/test_dbt_selection.py): here dbt, the parse and the source state are faked."""

from __future__ import annotations

import contextlib
import json
import shutil
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from flows.errors import DbtBuildFailed
from flows.settings import PROJECT_DIR, Settings
from flows.transform import dbt
from flows.transform.parse import Parsed
from flows.transform.selection import BuildPlan

UNIT = ["--exclude", "test_type:unit"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(PROJECT_DIR / "dbt_project", root / "dbt_project")
    shutil.copytree(PROJECT_DIR / "profiles", root / "profiles")
    return root


MANIFEST = object()


def _fake_plan(settings: Settings, manifest: Any, *, everything: str | None = None) -> BuildPlan:
    """Every node on the first build and with `everything`; then what a daily build picks."""
    assert manifest is MANIFEST  # the parsed manifest, handed on
    if everything or not (settings.home / "dbt" / "last_build.json").is_file():
        return BuildPlan(None, everything or "first", {"sources": {}})
    return BuildPlan(["source:usage.usage_daily+", "dates+"], "daily", {"sources": {}})


def _builds(
    project: Path, monkeypatch: pytest.MonkeyPatch, outcomes: list[bool], **settings: Any
) -> list[list[str]]:
    """The dbt argument lists of one `run_dbt_build` per outcome (True: dbt succeeded)."""
    calls: list[list[str]] = []
    results = iter(outcomes)

    def fake(_settings: Settings, args: list[str], manifest: Any) -> Any:
        assert manifest is MANIFEST
        calls.append(list(args))
        return SimpleNamespace(success=next(results), result=SimpleNamespace(results=[]))

    parses = iter([1.5])  # the first call parses, later ones reuse
    monkeypatch.setattr(dbt, "_invoke_dbt", fake)
    monkeypatch.setattr(dbt, "parsed_project", lambda s: Parsed(MANIFEST, next(parses, 0.0)))
    monkeypatch.setattr(dbt, "plan_build", _fake_plan)
    config = Settings(home=project / "state", project_dir=project, **settings)
    for _ in outcomes:
        with contextlib.suppress(DbtBuildFailed):
            dbt.run_dbt_build(config, date(2026, 10, 31))
    return calls


def _with_unit_tests(calls: list[list[str]]) -> list[bool]:
    return [" ".join(UNIT) not in " ".join(args) for args in calls]


def test_unit_tests_run_once_per_project_version(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a failed build does not count as passed unit tests
    calls = _builds(project, monkeypatch, [False, True, True])
    assert _with_unit_tests(calls) == [True, True, False]

    model = project / "dbt_project" / "models" / "marts" / "account_snapshots.sql"
    model.write_text(model.read_text() + "\n-- an analyst's edit\n")
    assert _with_unit_tests(_builds(project, monkeypatch, [True, True])) == [True, False]


def test_a_full_refresh_runs_them(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _builds(project, monkeypatch, [True])
    calls = _builds(project, monkeypatch, [True], full_refresh=True)
    assert _with_unit_tests(calls) == [True]
    # raw reloaded from scratch: every incremental model is rebuilt too
    assert "--full-refresh" in calls[0]
    assert "--full-refresh" not in _builds(project, monkeypatch, [True])[0]


def _selected(args: list[str]) -> list[str] | None:
    return args[args.index("--select") + 1 :] if "--select" in args else None


def test_a_failed_build_is_followed_by_the_same_or_a_full_one(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # first build fails: no record, so the next is a full build again; then daily ones
    calls = _builds(project, monkeypatch, [False, True, True])
    assert [_selected(c) for c in calls] == [None, None, ["source:usage.usage_daily+", "dates+"]]
    # a full build (here: --full-refresh) forgets the record before it starts: if it fails,
    # the next run builds everything too
    calls = _builds(project, monkeypatch, [False], full_refresh=True)
    assert _selected(calls[0]) is None
    assert _selected(_builds(project, monkeypatch, [True])[0]) is None


def _tests_scope(args: list[str]) -> str:
    return str(json.loads(args[args.index("--vars") + 1])["data_tests_scope"])


def test_data_tests_check_what_a_daily_build_rebuilt_unless_the_last_one_failed(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """macros/get_where_subquery.sql: with data_tests_scope=changed the tests of incremental
    models check the dates a build rewrote. A build after one that failed (a test found bad
    rows, say, in dates it had written) checks whole tables, as a full build does."""
    calls = _builds(project, monkeypatch, [True, True, False, True, True])
    assert [_tests_scope(c) for c in calls] == ["all", "changed", "changed", "all", "changed"]


def test_the_report_says_what_was_built(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def node(kind: str, status: str) -> Any:
        return SimpleNamespace(
            status=status,
            message="",
            node=SimpleNamespace(unique_id=f"{kind}.x", resource_type=kind),
        )

    run = [node("model", "success"), node("model", "success"), node("test", "pass")]
    run += [node("unit_test", "pass"), node("seed", "success"), node("test", "skipped")]
    monkeypatch.setattr(
        dbt,
        "_invoke_dbt",
        lambda s, a, m: SimpleNamespace(success=True, result=SimpleNamespace(results=run)),
    )
    parses = iter([2.5])
    monkeypatch.setattr(dbt, "parsed_project", lambda s: Parsed(MANIFEST, next(parses, 0.0)))
    monkeypatch.setattr(dbt, "plan_build", _fake_plan)
    config = Settings(home=project / "state", project_dir=project)
    first = dbt.run_dbt_build(config, date(2026, 10, 30))
    assert (first.parse_s, first.selection, first.models_run, first.tests_run) == (2.5, "all", 2, 2)
    second = dbt.run_dbt_build(config, date(2026, 10, 31))
    assert second.parse_s == 0.0  # a backfill's next date: the parse is reused
    assert second.selection == "source:usage.usage_daily+ dates+"


def test_what_forces_a_full_build(project: Path) -> None:
    config = Settings(home=project / "state", project_dir=project)
    assert dbt._full_build_reason(config) is None
    assert dbt._full_build_reason(config.model_copy(update={"full_refresh": True}))
    assert dbt._full_build_reason(config.model_copy(update={"freshness": "off"}))
    # EXPANSION_DBT_BUILD=all (flows/settings.py `dbt_build`)
    assert dbt._full_build_reason(config.model_copy(update={"dbt_build": "all"}))
