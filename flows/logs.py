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
