"""Shared by the end-to-end modules: one temporary Prefect server for the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, prefect_server: None) -> Iterator[Path]:
    """Per test module: small generated extracts and the settings pointing at them."""
    from demo.generator import generate

    root = tmp_path_factory.mktemp("project")
    generate(root / "landing", root / "oracle", accounts=240, months=16, seed=11)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EXPANSION_HOME", str(root / "state"))
        env.setenv("EXPANSION_LANDING_DIR", str(root / "landing"))
        env.setenv("EXPANSION_ORACLE_DIR", str(root / "oracle"))
        env.setenv("EXPANSION_DUCKDB_MEMORY_LIMIT", "2GB")
        yield root
