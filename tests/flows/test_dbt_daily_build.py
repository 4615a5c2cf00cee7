"""The daily `dbt build` on real dbt (80 accounts, tests/dbt/conftest.py's data): the second
date of a process reuses the first date's parse, skips the staging models and tests of the
CRM tables that got no new rows, and gives the same tables as a fresh parse and a full
refresh at that date."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from flows import warehouse as warehouse_module
from flows.settings import PROJECT_DIR, Settings
from flows.transform import dbt, parse
from tests.dbt.conftest import (  # noqa: F401  (fixtures)
    AS_OF,
    differences,
    landing,
    raw_warehouse,
    run_dbt,
)


def _graph(manifest: Path) -> dict[str, tuple[list[str], str]]:
    nodes = json.loads(manifest.read_text())["nodes"]
    return {
        uid: (sorted(n["depends_on"].get("nodes", [])), n["config"].get("materialized", ""))
        for uid, n in nodes.items()
    }


def test_a_daily_build_reuses_the_parse_and_equals_a_full_refresh(
    raw_warehouse: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    free = {"bytes": 75 * 2**30}  # the disk under the spill folder
    monkeypatch.setattr(warehouse_module, "free_disk", lambda root: free["bytes"])
    warehouse_module.spill_budget.cache_clear()
    settings = Settings(home=tmp_path / "home", project_dir=PROJECT_DIR, duckdb_memory_limit="1GB")
    settings.home.mkdir()
    shutil.copy(raw_warehouse, settings.warehouse)
    # the day before: AS_OF's usage not loaded yet
    con = duckdb.connect(str(settings.warehouse))
    con.execute(
        "create table main.held as from raw.usage__usage_daily where usage_date = ?", [AS_OF]
    )
    con.execute("delete from raw.usage__usage_daily where usage_date = ?", [AS_OF])
    con.close()
    parses = len(parse.PARSES)

    first = dbt.run_dbt_build(settings, AS_OF - timedelta(days=1))
    assert first.selection == "all" and first.parse_s and len(parse.PARSES) == parses + 1

    # today's load: usage only (CRM and billing extracts unchanged)
    con = duckdb.connect(str(settings.warehouse))
    con.execute("update main.held set _loaded_at = now()::timestamp, _run_id = 'today'")
    con.execute("insert into raw.usage__usage_daily by name from main.held")
    con.execute("drop table main.held")
    con.close()

    daily = dbt.run_dbt_build(settings, AS_OF)
    assert daily.parse_s == 0.0 and len(parse.PARSES) == parses + 1  # no second parse
    assert "source:usage.usage_daily+" in daily.selection
    assert "crm" not in daily.selection
    assert 0 < daily.models_run < first.models_run and daily.tests_run < first.tests_run

    target = settings.home / "dbt" / "target"
    nodes = json.loads((target / "manifest.json").read_text())["nodes"]
    ran = [r["unique_id"] for r in json.loads((target / "run_results.json").read_text())["results"]]
    crm_staging = {u for u, n in nodes.items() if n["name"].startswith("stg_crm__")}
    crm_tests = {u for u, n in nodes.items() if n.get("attached_node") in crm_staging}
    assert crm_tests, "the project has tests on its CRM staging models"
    assert not (crm_staging | crm_tests) & set(ran)
    assert "model.expansion.stg_usage__usage_daily" in ran

    # the same raw rows, parsed afresh with as_of and every model rebuilt from scratch (a run:
    # tests change no table)
    work = tmp_path / "full"
    work.mkdir()
    full = work / "warehouse.duckdb"
    shutil.copy(settings.warehouse, full)
    run_dbt(["run", "--full-refresh"], work, warehouse=full)
    assert _graph(work / "target" / "manifest.json") == _graph(target / "manifest.json")
    found = differences(settings.warehouse, full)
    assert found and all(counts == (0, 0) for counts in found.values()), found

    # the next process's parse is a partial one: the profile dbt hashes did not change,
    # although the run wrote files (the spill budget in it is rounded)
    log = settings.home / "dbt" / "logs" / "dbt.log"
    full_parses = log.read_text().count("Unable to do partial parsing")
    free["bytes"] -= 5 * 2**20 + 4096
    warehouse_module.spill_budget.cache_clear()
    parse.forget_parse()
    parse.parsed_project(settings)
    assert log.read_text().count("Unable to do partial parsing") == full_parses
    warehouse_module.spill_budget.cache_clear()
