"""The project's on-run-start hook (dbt_project.yml: the incremental models' build-state
tables) comes back among dbt's results: it is not a node of the build, nor a source of the
freshness check, unless it failed."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from flows.settings import PROJECT_DIR, Settings
from flows.transform import freshness, parse
from flows.transform.dbt import summarize


def _result(unique_id: str, kind: str, status: str, **extra: Any) -> SimpleNamespace:
    node = SimpleNamespace(unique_id=unique_id, resource_type=kind)
    return SimpleNamespace(node=node, status=status, message=f"{unique_id} {status}", **extra)


HOOK = "operation.expansion.expansion-on-run-start-0"


def test_a_hook_is_not_counted_as_a_node_unless_it_failed() -> None:
    ok = SimpleNamespace(
        success=True,
        result=SimpleNamespace(
            results=[
                _result(HOOK, "operation", "success"),
                _result("model.expansion.accounts", "model", "success"),
                _result("test.expansion.unique_accounts", "test", "pass"),
            ]
        ),
    )
    report = summarize(ok)
    assert (report.passed, report.models_run, report.tests_run, report.failed) == (2, 1, 1, 0)
    failed = SimpleNamespace(
        success=False, result=SimpleNamespace(results=[_result(HOOK, "operation", "error")])
    )
    report = summarize(failed)
    assert report.failed == 1 and report.failures == [f"{HOOK}: {HOOK} error"]


def test_freshness_lists_the_sources_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dbt.cli.main

    class Runner:
        def __init__(self, manifest: Any = None, callbacks: Any = None) -> None:
            pass

        def invoke(self, args: list[str]) -> Any:
            if args[0] == "parse":
                return SimpleNamespace(success=True, result=SimpleNamespace(nodes={}))
            results = [
                _result(HOOK, "operation", "success"),
                _result(
                    "source.expansion.usage.usage_daily",
                    "source",
                    "pass",
                    age=7200.0,
                    max_loaded_at="2026-10-31 06:00:00",
                ),
            ]
            return SimpleNamespace(success=True, result=SimpleNamespace(results=results))

    monkeypatch.setattr(dbt.cli.main, "dbtRunner", Runner)
    parse.forget_parse()
    shutil.copytree(PROJECT_DIR / "dbt_project", tmp_path / "dbt_project")
    shutil.copytree(PROJECT_DIR / "profiles", tmp_path / "profiles")
    settings = Settings(home=tmp_path / "state", project_dir=tmp_path)
    rows = freshness.check_freshness(settings, date(2026, 10, 31))
    assert [(r.source, r.status, r.age_hours) for r in rows] == [("usage.usage_daily", "pass", 2.0)]
    parse.forget_parse()
