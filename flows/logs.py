"""Logging for the pipeline: what happened at INFO, why at DEBUG, the run id on every line.

Prefect reads `flows/logging.yml` (set as PREFECT_LOGGING_SETTINGS_PATH by
`flows.prefect_env.configure`): Prefect's own configuration, with a `run_id` field on every
console line, and the `flows`, `models` and `demo` loggers at INFO (DEBUG with
`EXPANSION_LOG_LEVEL=DEBUG`). Inside a flow the run id is the Prefect flow run's id, the same
id as the run record in `state/runs/`; outside one (e.g. `expansion sync`) it is the id a
command sets with `run_id_scope`, or `-`. The same loggers also go to the Prefect API, so the
UI shows them under their flow run.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

LOGGING_CONFIG = Path(__file__).with_name("logging.yml")
OUR_LOGGERS = ("flows", "models", "demo")
NO_RUN = "-"

_run_id: ContextVar[str | None] = ContextVar("expansion_run_id", default=None)


def current_run_id() -> str:
    """The id of the run this code is part of: the Prefect flow run, or the one set here."""
    if "prefect.context" in sys.modules:  # never import Prefect just to log a line
        from prefect.context import FlowRunContext

        context = FlowRunContext.get()
        if context is not None and context.flow_run is not None:
            return str(context.flow_run.id)
    return _run_id.get() or NO_RUN


@contextmanager
def run_id_scope(run_id: str) -> Iterator[None]:
    """Log lines written inside carry `run_id` (for work outside a Prefect flow run)."""
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)


class RunIdFilter(logging.Filter):
    """Adds `record.run_id`: the flow run a Prefect run logger names, else the current run."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "run_id", None):
            flow_run_id = getattr(record, "flow_run_id", None)
            record.run_id = str(flow_run_id) if flow_run_id else current_run_id()
        return True


# --- the run's log file, and a console that shows the result ---------------------------------

RUN_LOGS = "logs"  # <home>/logs/<command>-<start>.log: one file per command that runs stages
KEEP_RUN_LOGS = 100  # the newest files kept; older ones are removed when a new one starts
FILE_FORMAT = "%(asctime)s.%(msecs)03d | %(levelname)-7s | run %(run_id)s | %(name)s - %(message)s"
FLOW_RUN_FORMAT = (
    "%(asctime)s.%(msecs)03d | %(levelname)-7s | run %(run_id)s | "
    "Flow run %(flow_run_name)r - %(message)s"
)
TASK_RUN_FORMAT = (
    "%(asctime)s.%(msecs)03d | %(levelname)-7s | run %(run_id)s | "
    "Task run %(task_run_name)r - %(message)s"
)
FILE_DATES = "%Y-%m-%d %H:%M:%S"
# the loggers that do not propagate to the root logger but write to the console themselves
SELF_HANDLED = ("uvicorn", "fastapi")
SERVER_NOTICES = ("Starting temporary server", "Stopping temporary server")


class ServerNotices(logging.Filter):
    """For the console: drops Prefect's notices that it starts or stops its temporary server
    (how Prefect runs is not the run's result; the run's log file keeps them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name == "prefect"
            and isinstance(record.msg, str)
            and record.msg.startswith(SERVER_NOTICES)
        )


def _file_formatter() -> logging.Formatter:
    """Prefect's formatter (flow and task runs named) when Prefect is loaded, else a plain one."""
    if "prefect" in sys.modules:
        from prefect.logging.formatters import PrefectFormatter

        return PrefectFormatter(
            FILE_FORMAT,
            FILE_DATES,
            flow_run_fmt=FLOW_RUN_FORMAT,
            task_run_fmt=TASK_RUN_FORMAT,
            # a line of a run logger made outside its run context still gets written
            defaults={"flow_run_name": "-", "task_run_name": "-", "run_id": NO_RUN},
        )
    return logging.Formatter(FILE_FORMAT, FILE_DATES)


def _is_console(handler: logging.Handler) -> bool:
    """A handler that writes to the terminal (Prefect's console handler, a plain stream one);
    not a file, not a test's capture handler."""
    if isinstance(handler, logging.FileHandler):
        return False
    return (
        type(handler).__name__ == "PrefectConsoleHandler" or type(handler) is logging.StreamHandler
    )


def _prune(folder: Path, keep: int) -> None:
    logs = sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime)
    for old in logs[: max(0, len(logs) - keep)]:
        old.unlink(missing_ok=True)


def run_log_path(home: Path, command: str) -> Path:
    """Where the log file of a command started now goes: `<home>/logs/<command>-<start>.log`."""
    from datetime import datetime

    return home / RUN_LOGS / f"{command}-{datetime.now():%Y%m%dT%H%M%S}.log"


@contextmanager
def run_log(
    path: Path, *, console_level: int = logging.CRITICAL, keep: int = KEEP_RUN_LOGS
) -> Iterator[Path]:
    """Inside: every log line of the process (the pipeline's, Prefect's, dbt's through
    `flows.transform.command.DBT_LOGGER`, Python warnings), at the levels its loggers are set
    to (INFO; DEBUG for ours with EXPANSION_LOG_LEVEL=DEBUG), goes to the file at `path`, run id
    and masking as on the console; the console's log handlers show only lines at
    `console_level` and above (a command that prints what happened itself shows no log line
    twice, and no error: the command prints it, once). Restored on the way out."""
    from flows.files import private_dir
    from flows.masking import MaskFilter

    private_dir(path.parent)
    _prune(path.parent, keep - 1)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(_file_formatter())
    handler.addFilter(RunIdFilter())
    handler.addFilter(MaskFilter())
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in SELF_HANDLED)]
    quieted: list[tuple[logging.Handler, int]] = []
    for logger in loggers:
        for console in filter(_is_console, logger.handlers):
            if all(console is not h for h, _ in quieted):
                quieted.append((console, console.level))
                console.setLevel(max(console.level, console_level))
        logger.addHandler(handler)
    logging.captureWarnings(True)
    try:
        yield path
    finally:
        logging.captureWarnings(False)
        for logger in loggers:
            logger.removeHandler(handler)
        for console, level in quieted:
            console.setLevel(level)
        handler.close()
