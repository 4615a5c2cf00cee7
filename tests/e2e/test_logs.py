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
