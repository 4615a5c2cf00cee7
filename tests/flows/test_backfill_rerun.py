"""A backfill of two dates through the Prefect flow, on small generated data, twice: one flow
run each time (no pipeline subflow per date), one load, and the second time every date's
model is the one the first fitted (the training cache keyed on the rows, in any order)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

DATES = [date(2026, 6, 30), date(2026, 7, 31)]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from prefect.testing.utilities import prefect_test_harness

    from demo.generator import generate

    root = tmp_path_factory.mktemp("backfill")
    generate(root / "landing", root / "oracle", accounts=240, months=16, seed=11)
    with pytest.MonkeyPatch.context() as env, prefect_test_harness(server_startup_timeout=120):
        env.setenv("EXPANSION_HOME", str(root / "state"))
        env.setenv("EXPANSION_LANDING_DIR", str(root / "landing"))
        env.setenv("EXPANSION_DUCKDB_MEMORY_LIMIT", "2GB")
        yield root


def _flow_runs(name: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[name])))
    return len(runs)


def _models(project: Path) -> set[str]:
    from flows.registry import list_models

    return set(list_models(project / "state" / "models")["version"])


def test_a_rerun_of_a_backfill_reuses_its_models_in_one_flow_run(project: Path) -> None:
    from flows.backfill import expansion_backfill

    first: dict[str, Any] = expansion_backfill(dates=list(reversed(DATES)))
    assert first["status"] == "completed"
    assert [d["as_of"] for d in first["dates"]] == [d.isoformat() for d in DATES]
    # the stages that do not depend on the as_of ran once, before the dates
    assert {"load", "validate_raw", "dbt_parse"} <= set(first["shared"]["stages"])
    assert first["shared"]["files_loaded"] > 0
    for run in first["dates"]:
        assert "load" not in run["stages"] and "dbt_build" in run["stages"]
        assert run["dbt"]["parse_s"] == 0.0  # the backfill's one parse, before the dates
        assert run["model"]["reused"] is False and run["accounts_scored"] > 0
        assert run["synced"] == []  # a backfill never sends
    models = _models(project)
    assert len({r["model"]["champion_version"] for r in first["dates"]}) == 2 == len(models)
    assert _flow_runs("expansion-backfill") == 1
    assert _flow_runs("expansion-pipeline") == 0  # no pipeline subflow per date

    again: dict[str, Any] = expansion_backfill(dates=DATES)
    assert again["status"] == "completed"
    assert again["shared"]["files_loaded"] == 0  # nothing new to load
    for before, after in zip(first["dates"], again["dates"], strict=True):
        assert after["model"]["reused"] is True
        assert after["model"]["champion_version"] == before["model"]["champion_version"]
        assert "trained" not in after["model"]["decision"]
    assert _models(project) == models  # nothing was fitted or saved
    assert _flow_runs("expansion-backfill") == 2

    # one record per date and one for each backfill
    records = [json.loads(p.read_text()) for p in (project / "state" / "runs").glob("*.json")]
    own = [r for r in records if r["backfill"].get("dates")]
    assert len(own) == 2 and all(r["status"] == "completed" for r in own)
    assert sum(1 for r in records if r["backfill"].get("run_id")) == 4
