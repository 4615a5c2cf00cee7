"""The pipeline's `dbt build` runs the dbt unit tests only when they can have a new answer:
the dbt project (or dbt, DuckDB, the profile) changed since they last passed, or a full
refresh. Unit tests check SQL on fixed inputs, so a daily run on new data skips them."""

from __future__ import annotations

import contextlib
import shutil
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from flows.errors import DbtBuildFailed
from flows.settings import PROJECT_DIR, Settings
from flows.transform import dbt

UNIT = ["--exclude", "test_type:unit"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(PROJECT_DIR / "dbt_project", root / "dbt_project")
    shutil.copytree(PROJECT_DIR / "profiles", root / "profiles")
    return root


def _builds(
    project: Path, monkeypatch: pytest.MonkeyPatch, outcomes: list[bool], **settings: Any
) -> list[list[str]]:
    """The dbt argument lists of one `run_dbt_build` per outcome (True: dbt succeeded)."""
    calls: list[list[str]] = []
    results = iter(outcomes)

    def fake(_settings: Settings, args: list[str]) -> Any:
        calls.append(list(args))
        return SimpleNamespace(success=next(results), result=SimpleNamespace(results=[]))

    monkeypatch.setattr(dbt, "_invoke_dbt", fake)
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
