"""Shared test setup: Prefect runs against a temporary local server with state in a temp dir."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="expansion-prefect-"))
os.environ.setdefault("PREFECT_HOME", str(_PREFECT_HOME))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see flows/prefect_env.py
# Tests never read a developer's settings file or environment overrides.
for key in [k for k in os.environ if k.startswith("EXPANSION_")]:
    del os.environ[key]
# Nor log their models to a developer's MLflow server (flows/tracking.py: on when it is set).
os.environ.pop("MLFLOW_TRACKING_URI", None)


PG_SERVER = "host=127.0.0.1 port=5432 user=postgres connect_timeout=3"


@contextmanager
def fresh_postgres_database() -> Iterator[tuple[Any, str]]:
    """A new, empty database on the local PostgreSQL server and an autocommit connection to the
    server's `postgres` database; the database is dropped afterwards (if the caller has not
    already dropped it). Skips the test when no server answers."""
    import psycopg

    name = f"expansion_test_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(f"{PG_SERVER} dbname=postgres", autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 (run scripts/ensure-postgres.sh): {exc}")
    with admin:
        admin.execute(f'create database "{name}"')
        try:
            yield admin, name
        finally:
            admin.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def pg_database() -> Iterator[str]:
    """The DSN of a new, empty database on the local PostgreSQL server, dropped afterwards."""
    with fresh_postgres_database() as (_, name):
        yield f"{PG_SERVER} dbname={name}"
