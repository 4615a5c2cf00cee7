"""Recovery: finish or undo what a killed run left behind."""

from __future__ import annotations

import json
import logging

from flows.delivery.publish import recover as recover_serving
from flows.registry import clean_staging, repair_history
from flows.run.private import secure_state
from flows.run.records import write_run_record
from flows.settings import Settings

log = logging.getLogger(__name__)


def recover(settings: Settings) -> list[str]:
    """Finish or undo what a killed run left behind (call while holding the pipeline lock).

    Unfinished serving files and Parquet links (`flows.delivery.publish.recover`), interrupted model
    saves and a champion history entry (`flows.registry`), and run records still saying
    `running`: their process is gone (it would hold the lock), so they become `interrupted`.
    Everything else a killed run leaves is safe as it is: raw rows and the load ledger, the
    scores and the sync ledger are written in transactions, and the next run redoes the rest.
    Then private state open to other users is closed (`flows.run.private.secure_state`).
    """

    done = [f"serving: {line}" for line in recover_serving(settings.serving)]
    for leftover in clean_staging(settings.registry):
        done.append(f"registry: removed unfinished {leftover}")
    if settings.registry.is_dir() and repair_history(settings.registry):
        done.append("registry: appended the champion's missing history entry")
    for path in sorted(settings.runs_dir.glob("*.json")) if settings.runs_dir.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("status") == "running":
            record["status"] = "interrupted"
            record["error"] = "the process ended before the run finished (killed or crashed)"
            write_run_record(settings, record)
            done.append(f"run {record.get('run_id')}: marked interrupted")
    for stale in sorted(settings.runs_dir.glob("*.json.tmp")) if settings.runs_dir.is_dir() else []:
        stale.unlink(missing_ok=True)
    done += [f"private state: {line}" for line in secure_state(settings)]  # logs its own
    for line in done:
        if not line.startswith(
            ("serving: ", "private state: ")
        ):  # flows.delivery.publish logged those
            log.warning("recovered after an interrupted run: %s", line)
    return done
