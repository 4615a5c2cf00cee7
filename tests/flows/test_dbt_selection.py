"""What the daily `dbt build` selects (flows/transform/selection.py), on a tiny manifest and
a tiny DuckDB warehouse: the models downstream of sources with new rows since the last
SUCCESSFUL build, plus the models of the as_of var; everything when nothing can be trusted."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import pytest

from flows.settings import PROJECT_DIR, Settings
from flows.transform import selection
from flows.transform.selection import BuildPlan, plan_build, remember_build

AS_OF = date(2026, 10, 31)


def _model(
    name: str, parents: list[str], sql: str = "select 1", macros: tuple[str, ...] = ()
) -> Any:
    return SimpleNamespace(
        resource_type="model",
        name=name,
        raw_code=sql,
        depends_on=SimpleNamespace(nodes=list(parents), macros=list(macros)),
    )


def _macro(sql: str, calls: tuple[str, ...] = ()) -> Any:
    return SimpleNamespace(macro_sql=sql, depends_on=SimpleNamespace(macros=list(calls)))


def _source(source: str, table: str, loaded_at: str | None = "_loaded_at") -> Any:
    return SimpleNamespace(
        source_name=source,
        name=table,
        schema="raw",
        identifier=f"{source}__{table}",
        loaded_at_field=loaded_at,
    )


def manifest(adapter: str = "duckdb", **extra_models: Any) -> Any:
    """crm.accounts -> stg_crm__accounts -> accounts; usage.usage_daily -> stg_usage ->
    dates (reads as_of through a macro) -> snapshots; config.metrics (no loaded_at_field)
    -> stg_config; scores.account_scores feeds no model."""
    nodes = {
        "model.p.stg_crm__accounts": _model("stg_crm__accounts", ["source.p.crm.accounts"]),
        "model.p.accounts": _model("accounts", ["model.p.stg_crm__accounts"]),
        "model.p.stg_usage": _model("stg_usage", ["source.p.usage.usage_daily"]),
        "model.p.dates": _model(
            "dates", ["model.p.stg_usage"], "{{ resolved() }}", ("macro.p.resolved",)
        ),
        "model.p.snapshots": _model("snapshots", ["model.p.dates", "model.p.accounts"]),
        "model.p.stg_config": _model("stg_config", ["source.p.config.metrics"]),
        "test.p.not_null_accounts": SimpleNamespace(resource_type="test"),
        **{f"model.p.{k}": v for k, v in extra_models.items()},
    }
    return SimpleNamespace(
        nodes=nodes,
        macros={
            "macro.p.literal": _macro("{% set d = var('as_of', none) %}{{ d }}"),
            "macro.p.resolved": _macro("coalesce({{ literal() }}, x)", ("macro.p.literal",)),
            "macro.p.other": _macro("{{ var('as_of_min_coverage') }}"),
        },
        sources={
            "source.p.crm.accounts": _source("crm", "accounts"),
            "source.p.usage.usage_daily": _source("usage", "usage_daily"),
            "source.p.config.metrics": _source("config", "metrics", loaded_at=None),
            "source.p.scores.account_scores": _source("scores", "account_scores", loaded_at=None),
        },
        metadata=SimpleNamespace(adapter_type=adapter),
    )


def test_as_of_models_come_from_sql_and_macros() -> None:
    graph = selection.project_graph(
        manifest(direct=_model("direct", [], 'select {{ var("as_of") }}'))
    )
    assert selection.as_of_roots(graph) == {"model.p.dates", "model.p.direct"}
    # descendants, not ancestors: stg_usage feeds dates but does not read as_of
    assert selection.as_of_models(graph) == {"model.p.dates", "model.p.snapshots", "model.p.direct"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    config = Settings(home=tmp_path, project_dir=PROJECT_DIR)
    con = duckdb.connect(str(config.warehouse))
    con.execute("create schema raw")
    for table in ("crm__accounts", "usage__usage_daily"):
        con.execute(f"create table raw.{table} (id int, _loaded_at timestamp)")
        con.execute(f"insert into raw.{table} values (1, timestamp '2026-10-30 06:00')")
    con.close()
    return config


def _load(settings: Settings, table: str, when: str = "2026-10-31 06:00") -> None:
    con = duckdb.connect(str(settings.warehouse))
    con.execute(f"insert into raw.{table} values (2, timestamp '{when}')")
    con.close()


def _plan(settings: Settings, **kwargs: Any) -> BuildPlan:
    return plan_build(settings, kwargs.pop("of", manifest()), **kwargs)


def _succeed(settings: Settings, plan: BuildPlan) -> BuildPlan:
    remember_build(settings, plan, AS_OF)
    return plan


DAILY = ["source:config.metrics+", "dates+"]  # no loaded_at_field: always; as_of: always


def test_a_daily_build_selects_what_changed_since_the_last_success(settings: Settings) -> None:
    first = _succeed(settings, _plan(settings))
    assert first.select is None and first.reason == "no successful build recorded"

    assert _succeed(settings, _plan(settings)).select == DAILY  # nothing new: CRM not rebuilt

    _load(settings, "usage__usage_daily")
    assert _succeed(settings, _plan(settings)).select == [
        "source:config.metrics+",
        "source:usage.usage_daily+",
        "dates+",
    ]

    # new CRM rows, and the build fails: the next run selects them again
    _load(settings, "crm__accounts")
    failed = _plan(settings)
    assert "source:crm.accounts+" in (failed.select or [])
    retried = _succeed(settings, _plan(settings))
    assert retried.select == failed.select
    assert _plan(settings).select == DAILY


def test_rows_taken_out_count_as_a_change(settings: Settings) -> None:
    _succeed(settings, _plan(settings))
    con = duckdb.connect(str(settings.warehouse))
    con.execute("insert into raw.crm__accounts values (3, timestamp '2026-10-29 06:00')")
    con.close()
    assert "source:crm.accounts+" in (_plan(settings).select or [])


def test_everything_is_built_when_the_record_cannot_be_trusted(
    settings: Settings, tmp_path: Path
) -> None:
    _succeed(settings, _plan(settings))
    assert _plan(settings, everything="--full-refresh").select is None

    other_vars = settings.model_copy(update={"reporting_currency": "EUR"})
    plan = _plan(other_vars)
    assert plan.select is None and "vars" in plan.reason

    moved = settings.model_copy(update={"warehouse_path": tmp_path / "other.duckdb"})
    assert _plan(moved).select is None  # no such warehouse: the state is unreadable

    assert _plan(settings, of=manifest(adapter="postgres")).select is None

    selection.forget_build(settings)
    assert _plan(settings).select is None


def test_a_project_edit_makes_a_full_build(settings: Settings, tmp_path: Path) -> None:
    shutil.copytree(PROJECT_DIR / "dbt_project", tmp_path / "p" / "dbt_project")
    shutil.copytree(PROJECT_DIR / "profiles", tmp_path / "p" / "profiles")
    edited = settings.model_copy(update={"project_dir": tmp_path / "p"})
    _succeed(edited, _plan(edited))
    assert _plan(edited).select == DAILY
    model = edited.dbt_project / "models" / "marts" / "accounts.sql"
    model.write_text(model.read_text() + "\n-- an analyst's edit\n")
    plan = _plan(edited)
    assert plan.select is None and "project" in plan.reason
