"""Process defaults for a run with no server: call before importing prefect or lightgbm.

Without `PREFECT_API_URL`, Prefect starts a temporary local server; its state (SQLite) lives in
the project's state directory, analytics are off and the start-up timeout is raised so a slow
machine does not fail. With `PREFECT_API_URL` set, runs report to that server instead.
Values already in the environment win.

The process umask becomes `077` here, before anything is written (`flows.files.restrict_umask`): state
is owner-only from its first byte, the Prefect server's database included.
"""

from __future__ import annotations

import os
from pathlib import Path

from flows.logs import LOGGING_CONFIG, OUR_LOGGERS
from flows.secrets import SECRETS_DIR_ENV


def configure(home: Path, *, log_level: str | None = None, secrets_dir: Path | None = None) -> None:
    from flows.files import private_dir, restrict_umask

    restrict_umask()
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    private_dir(Path(os.environ["PREFECT_HOME"]).expanduser())
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "true")
    if secrets_dir is not None:  # flows/secrets.py reads it (a settings-file value, too)
        os.environ.setdefault(SECRETS_DIR_ENV, str(secrets_dir))
    # our logging.yml (the run id on every line); our loggers also go to the Prefect API, and
    # lines logged outside a flow run (e.g. `expansion sync`) stay on the console only
    os.environ.setdefault("PREFECT_LOGGING_SETTINGS_PATH", str(LOGGING_CONFIG))
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", ",".join(OUR_LOGGERS))
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    level = (log_level or os.environ.get("EXPANSION_LOG_LEVEL") or "INFO").upper()
    for name in OUR_LOGGERS:
        os.environ.setdefault(f"PREFECT_LOGGING_LOGGERS_{name.upper()}_LEVEL", level)
    os.environ.setdefault("DO_NOT_TRACK", "1")  # dbt anonymous usage stats
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    # LightGBM's OpenMP threads spin while they wait; next to Prefect's and dbt's threads on a
    # small machine that made training ten times slower (45 s instead of 4 s here).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
