"""Every console log line carries the run id: the flow run's inside a flow, the command's
outside one; DEBUG lines appear with EXPANSION_LOG_LEVEL=DEBUG."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

PROBE = """
import logging, sys
from pathlib import Path
from flows import prefect_env
prefect_env.configure(Path(sys.argv[1]))
from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run
from flows.logs import run_id_scope

log = logging.getLogger("flows.probe")

@task
def step() -> None:
    log.info("task: what happened")
    log.debug("task: why")

@flow(name="log-probe")
def probe() -> str:
    get_run_logger().info("flow logger")
    log.info("module logger in the flow")
    step()
    return str(flow_run.get_id())

with run_id_scope("manual-probe"):
    log.info("outside any flow")
print("FLOW_RUN", probe())
"""


def test_every_line_carries_the_run_id(prefect_server: None, tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    # PREFECT_LOGGING_* left in os.environ by in-process CLI tests (flows/prefect_env.py sets
    # them with setdefault) would pin the loggers' levels: configure() must choose them here
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING_")},
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),  # the session's test server
        "EXPANSION_LOG_LEVEL": "DEBUG",
        "NO_COLOR": "1",
        "COLUMNS": "400",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    flow_run_id = re.search(r"FLOW_RUN (\S+)", done.stdout).group(1)  # type: ignore[union-attr]
    lines = [line for line in done.stderr.splitlines() if re.match(r"\d\d:\d\d:\d\d", line)]
    assert len(lines) >= 6, done.stderr
    for line in lines:
        assert re.search(r"\| run (\S+) \|", line), line
    by_message = {line.rsplit(" - ", 1)[-1]: line for line in lines}
    assert f"run {flow_run_id} |" in by_message["flow logger"]
    assert f"run {flow_run_id} |" in by_message["module logger in the flow"]
    assert f"run {flow_run_id} |" in by_message["task: what happened"]
    assert "DEBUG" in by_message["task: why"] and f"run {flow_run_id} |" in by_message["task: why"]
    assert "run manual-probe |" in by_message["outside any flow"]


# --- the console of `expansion run`: the result on the console, the detail in the log file --

CLI = "from flows.cli import app; app()"
MAX_CONSOLE_LINES = 60


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    """`expansion <args>` in a fresh process, output captured (not a terminal), on the
    session's test server; the project's settings come from the `project` fixture's env."""
    from prefect.settings import PREFECT_API_URL

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING_")},
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "TERM"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )


def _log_file(stdout: str) -> Path:
    named = re.search(r"^(?:log|detail): (\S+\.log)$", stdout, re.MULTILINE)
    assert named, stdout
    return Path(named.group(1))


def test_the_console_shows_the_result_and_the_log_file_the_detail(project: Path) -> None:
    import pandas as pd

    done = _cli(["run"])
    shown = done.stdout + done.stderr
    assert done.returncode == 0, shown
    assert len(shown.splitlines()) <= MAX_CONSOLE_LINES, shown
    assert "\x1b" not in shown  # no colour codes when the output is not a terminal
    for stage in ("load", "dbt_build", "train", "score", "publish"):
        assert re.search(rf"^{stage}\s+\d+\.\d s", done.stdout, re.MULTILINE), done.stdout
    assert "Finished in state" not in shown and " START " not in shown
    log = _log_file(done.stdout)
    assert log.parent == project / "state" / "logs"
    detail = log.read_text()
    assert "\x1b" not in detail
    assert re.search(r"\| dbt - \d+ of \d+ START sql", detail)  # dbt's node lines
    assert re.search(r"\| dbt - \d+ of \d+ OK created sql", detail)
    assert "flows.ingest.ledger - loaded" in detail  # the loader's
    assert "Finished in state Completed()" in detail  # Prefect's

    # a bad extract: its message once on the console, the tasks' failures in the log file
    bad = project / "landing" / "usage" / "usage_daily" / "usage_daily_zz-bad.parquet"
    pd.DataFrame(
        {
            "account_id": ["x1"],
            "usage_date": [pd.Timestamp("2026-01-01").date()],
            "metric": ["api_calls"],
            "value": [-5.0],
        }
    ).to_parquet(bad)
    try:
        failed = _cli(["run"])
    finally:
        bad.unlink()
    shown = failed.stdout + failed.stderr
    assert failed.returncode == 3, shown
    assert "\x1b" not in shown
    assert shown.count("bad extract") == 1, shown
    first = next(line for line in failed.stderr.splitlines() if "bad extract" in line)
    assert shown.count(first.removeprefix("bad extract: ")) == 1, shown
    detail = _log_file(failed.stderr).read_text()
    assert "usage_daily_zz-bad.parquet" in detail and "Traceback" in detail
