"""Shared test setup: Prefect runs against a temporary local server with state in a temp dir."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
