"""The run record: one JSON file per run in `<home>/runs/`, and the summary it holds."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.files import write_atomic
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
    error: str | None = None

    def markdown(self) -> str:
        lines = [f"# Expansion pipeline run `{self.run_id}`", ""]
        lines.append(f"**Status:** {self.status}  **as_of:** {self.as_of}")
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
            lines += ["", f"dbt: {self.dbt}"]
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


def write_run_record(settings: Settings, record: dict[str, Any]) -> Path:
    path = settings.runs_dir / f"{record['run_id']}.json"
    return write_atomic(path, json.dumps(record, indent=2, default=str))
