"""Fixtures shared by the flow tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

SERVER = "host=127.0.0.1 port=5432 user=postgres connect_timeout=3"


@pytest.fixture
def pg_database() -> Iterator[str]:
    """The DSN of a new, empty database on the local PostgreSQL server, dropped afterwards."""
    name = f"expansion_test_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 (run scripts/ensure-postgres.sh): {exc}")
    with admin:
        admin.execute(f'create database "{name}"')
        try:
            yield f"{SERVER} dbname={name}"
        finally:
            admin.execute(f'drop database "{name}" with (force)')
