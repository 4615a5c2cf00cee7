"""A served deployment, two runs triggered at once: exactly one writes the warehouse."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.e2e

SERVE = "from flows.deployments import serve; from flows.settings import get_settings; serve(get_settings())"


async def _wait_for_deployment(name: str, timeout: float) -> None:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            try:
                await client.read_deployment_by_name(name)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)


async def _final_states(ids: list, timeout: float) -> list:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            runs = [await client.read_flow_run(i) for i in ids]
            if all(r.state and r.state.is_final() for r in runs):
                return [r.state for r in runs]
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs not finished: {[r.state for r in runs]}")
            await asyncio.sleep(2)


def test_two_runs_of_a_served_deployment_write_the_warehouse_once(
    prefect_server: None, tmp_path: Path
) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    from demo.generator import generate

    generate(tmp_path / "landing", tmp_path / "oracle", accounts=150, months=14, seed=5)
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "EXPANSION_HOME": str(tmp_path / "state"),
        "EXPANSION_LANDING_DIR": str(tmp_path / "landing"),
        "EXPANSION_DUCKDB_MEMORY_LIMIT": "2GB",
    }
    server = subprocess.Popen(
        # its log to a file: a pipe nobody reads fills up (dbt's node lines go to the serving
        # process's console) and blocks the process
        [sys.executable, "-c", SERVE],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve.log").open("wb"),
    )
    try:
        asyncio.run(_wait_for_deployment("expansion-pipeline/daily", 120))
        runs = [run_deployment("expansion-pipeline/daily", timeout=0) for _ in range(2)]
        states = asyncio.run(_final_states([r.id for r in runs], 600))
    finally:
        server.terminate()
        server.wait(timeout=60)
    names = sorted(s.type.value for s in states)
    assert names == ["CANCELLED", "COMPLETED"], [s.message for s in states]
    con = duckdb.connect(str(tmp_path / "state" / "warehouse.duckdb"), read_only=True)
    writers = con.execute(
        "select count(distinct run_id) from scores.account_score_history"
    ).fetchone()
    con.close()
    assert writers == (1,)
