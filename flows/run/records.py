"""The run record: one JSON file per run in `<home>/runs/`, and the summary it holds.

A record is private state (`0600` in a `0700` folder), and every text in it passes through
`flows.masking.mask_text` on the way to disk: an error that quotes an extract's content keeps
its message, not the secrets in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.files import write_atomic
from flows.masking import mask_text
from flows.settings import Settings


@dataclass
class RunSummary:
    run_id: str
    as_of: str | None = None
    status: str = "running"
    stages: dict[str, float] = field(default_factory=dict)
    rows_loaded: dict[str, int] = field(default_factory=dict)
    rows_quarantined: dict[str, int] = field(default_factory=dict)
    freshness: list[dict[str, Any]] = field(default_factory=list)
    files_loaded: int = 0
    files_skipped: int = 0
    dbt: dict[str, Any] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    accounts_scored: int = 0
    alerts: int = 0
    report: str | None = None
    top_accounts: list[dict[str, Any]] = field(default_factory=list)
    published: dict[str, Any] = field(default_factory=dict)
    synced: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the reader must know (RunContext.note)
    error: str | None = None
    # a backfill's own record: its dates and each date's run id; a date's: the backfill's run id
    backfill: dict[str, Any] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [f"# Expansion pipeline run `{self.run_id}`", ""]
        lines.append(f"**Status:** {self.status}  **as_of:** {self.as_of}")
        lines += [f"> {note}" for note in self.notes]
        if self.error:
            lines += ["", "```", self.error, "```"]
        lines += ["", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in self.stages.items()]
        if self.rows_loaded or self.rows_quarantined:
            lines += ["", "| table | rows loaded | rows quarantined |", "|---|---|---|"]
            for k in sorted(set(self.rows_loaded) | set(self.rows_quarantined)):
                lines.append(
                    f"| {k} | {self.rows_loaded.get(k, 0)} | {self.rows_quarantined.get(k, 0)} |"
                )
        stale = [f for f in self.freshness if f["status"] != "pass"]
        if stale:
            lines += ["", "| source | freshness | hours since last load |", "|---|---|---|"]
            lines += [f"| {f['source']} | {f['status']} | {f['age_hours']} |" for f in stale]
        if self.dbt:
            lines += ["", _dbt_line(self.dbt)]
        for g in self.gates:
            lines += ["", g["markdown"]]
        if self.model:
            lines += ["", f"model: {json.dumps(self.model, default=str)}"]
        lines += ["", f"accounts scored: {self.accounts_scored}"]
        lines.append(f"alerts on change: {self.alerts}")
        for s in self.synced:
            lines.append(
                f"- sync {s['name']} ({s['status']}): {s['inserted']} inserted, "
                f"{s['updated']} updated, {s['deleted']} deleted, {s['unchanged']} unchanged, "
                f"{s['failed']} failed"
            )
        return "\n".join(lines)


def _dbt_line(dbt: dict[str, Any]) -> str:
    """What the dbt build did: its outcome, what it selected, and what it ran and parsed."""
    counts = ", ".join(
        f"{dbt[k]} {k}" for k in ("passed", "failed", "warned", "skipped") if dbt.get(k)
    )
    line = f"**dbt build:** {'succeeded' if dbt.get('success') else 'failed'} ({counts or 'nothing run'})"
    if dbt.get("selection"):
        line += f"; selected `{dbt['selection']}`"
    if dbt.get("models_run") is not None:
        line += f": {dbt['models_run']} models, {dbt.get('tests_run', 0)} tests"
        if dbt.get("tests_scope") == "changed":
            line += " (of the rows rebuilt)"
    if dbt.get("parse_s") is not None:
        line += f"; parse {dbt['parse_s']:.1f} s" if dbt["parse_s"] else "; parse reused"
    return line


@dataclass
class BackfillSummary:
    """A backfill in one run: the stages it ran once (`shared`: load, the raw gate; their
    `stages` timings are its fixed costs) and one summary per as_of date, in order (`dates`:
    the per-date costs). `shared` is also the backfill's own run record."""

    shared: RunSummary
    dates: list[RunSummary] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.shared.run_id

    @property
    def status(self) -> str:
        return self.shared.status

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "error": self.shared.error,
            "shared": dict(self.shared.__dict__),
            "dates": [dict(d.__dict__) for d in self.dates],
        }

    def markdown(self) -> str:
        planned = self.shared.backfill.get("dates", [])
        lines = [f"# Expansion backfill `{self.run_id}`", ""]
        lines.append(f"**Status:** {self.status}  **dates:** {', '.join(planned)}")
        lines += [f"> {note}" for note in self.shared.notes]
        if self.shared.error:
            lines += ["", "```", self.shared.error, "```"]
        lines += ["", "Once for the whole backfill:", "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in self.shared.stages.items()]
        lines += [
            "",
            "| as_of | status | model | accounts scored | seconds |",
            "|---|---|---|---|---|",
        ]
        for d in self.dates:
            model = d.model.get("champion_version") or ""
            reused = " (reused)" if d.model.get("reused") else ""
            lines.append(
                f"| {d.as_of} | {d.status} | {model}{reused} | {d.accounts_scored} | "
                f"{d.stages.get('total', 0):.1f} |"
            )
        return "\n".join(lines)


ERROR_LINE_LIMIT = 1000  # characters of one line of a recorded error


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value, None)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


def write_run_record(settings: Settings, record: dict[str, Any]) -> Path:
    """Write `record` whole to `<home>/runs/<run_id>.json` (0600), masked."""
    path = settings.runs_dir / f"{record['run_id']}.json"
    masked = _masked(json.loads(json.dumps(record, default=str)))
    if masked.get("error"):
        masked["error"] = mask_text(masked["error"], None, line_limit=ERROR_LINE_LIMIT)
    return write_atomic(path, json.dumps(masked, indent=2))
