"""One dbt parse per process (flows/transform/parse.py): the freshness check and every build
of the process get the same manifest; a project edit, another var or another warehouse parses
again. dbt is faked here; tests/flows/test_dbt_daily_build.py runs the real one."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from flows.settings import PROJECT_DIR, Settings
from flows.transform import freshness, parse
from flows.transform.command import parsed_project_stamp


class FakeRunner:
    """dbt.cli.main.dbtRunner: records each invocation and the manifest it was given."""

    calls: ClassVar[list[tuple[list[str], Any]]] = []

    def __init__(self, manifest: Any = None, callbacks: Any = None) -> None:
        self.manifest = manifest

    def invoke(self, args: list[str]) -> Any:
        FakeRunner.calls.append((args, self.manifest))
        if args[0] == "parse":
            node = SimpleNamespace(compiled=False)
            return SimpleNamespace(success=True, result=SimpleNamespace(nodes={"model.x": node}))
        return SimpleNamespace(success=True, result=SimpleNamespace(results=[]))


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    import dbt.cli.main

    FakeRunner.calls = []
    monkeypatch.setattr(dbt.cli.main, "dbtRunner", FakeRunner)
    parse.forget_parse()
    shutil.copytree(PROJECT_DIR / "dbt_project", tmp_path / "dbt_project")
    shutil.copytree(PROJECT_DIR / "profiles", tmp_path / "profiles")
    return Settings(home=tmp_path / "state", project_dir=tmp_path)


def _parses() -> int:
    return sum(1 for args, _ in FakeRunner.calls if args[0] == "parse")


def test_freshness_and_builds_share_one_parse(settings: Settings) -> None:
    first = parse.parsed_project(settings)
    assert first.seconds >= 0 and parsed_project_stamp(settings).is_file()
    freshness.check_freshness(settings, date(2026, 10, 31))
    again = parse.parsed_project(settings)
    assert again.manifest is first.manifest and again.seconds == 0.0
    assert _parses() == 1
    fresh_args, manifest = FakeRunner.calls[-1]
    assert fresh_args[:2] == ["source", "freshness"] and manifest is first.manifest
    # parsed without as_of: the same parse serves every date
    parse_args = FakeRunner.calls[0][0]
    assert '"as_of"' not in parse_args[parse_args.index("--vars") + 1]
    assert '"as_of": "2026-10-31"' in fresh_args[fresh_args.index("--vars") + 1]


def test_what_a_parse_depends_on_parses_again(settings: Settings) -> None:
    parse.parsed_project(settings)
    parse.parsed_project(settings.model_copy(update={"reporting_currency": "EUR"}))
    assert _parses() == 2
    model = settings.dbt_project / "models" / "marts" / "accounts.sql"
    model.write_text(model.read_text() + "\n-- an analyst's edit\n")
    parse.parsed_project(settings)
    parse.parsed_project(settings)
    assert _parses() == 3
    parse.parsed_project(settings, reparse=True)  # `run_dbt_parse`: always parses
    assert _parses() == 4


def test_a_reused_manifest_comes_back_as_parsed(settings: Settings) -> None:
    node = parse.parsed_project(settings).manifest.nodes["model.x"]
    node.compiled, node.compiled_code, node.extra_ctes_injected = True, "select 1", True
    node.extra_ctes = ["cte"]
    parse.parsed_project(settings)
    assert (node.compiled, node.compiled_code, node.extra_ctes_injected, node.extra_ctes) == (
        False,
        None,
        False,
        [],
    )
