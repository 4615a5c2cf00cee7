"""What every reverse-ETL destination shares: the answer it gives a sync (which records it
accepted, rejected with a reason, or skipped), what a dry run's check found, and error
messages without secrets."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

import pandas as pd

from flows.masking import mask_text


@dataclass
class DestinationResult:
    accepted: set[str]
    failed: dict[str, str]  # key -> reason
    files: list[str] = field(default_factory=list)
    # update_only: keys the destination does not hold, so there was nothing to update
    skipped: set[str] = field(default_factory=set)


@dataclass
class Check:
    """What a dry run found out about a destination without changing it: `detail` in words;
    `existing`: which of the changed keys the destination holds, when it can tell (None when it
    cannot: a file or an API)."""

    detail: str
    existing: set[str] | None = None


class Writer(Protocol):
    def check(self, changes: pd.DataFrame) -> Check:
        """Reach the destination and see it would take `changes`; change nothing. Raises, naming
        the destination and what is wrong, when it would not."""
        ...

    def send(self, changes: pd.DataFrame, run_id: str, *, force: bool = False) -> DestinationResult:
        """Apply `changes`; `force` (full resync) rewrites records the destination says it
        already holds at this hash."""
        ...


class DestinationUnavailable(ConnectionError):
    """The destination could not be reached (or refused us); nothing was sent."""


def mask(exc: BaseException | str) -> str:
    """The first line of an error, without passwords or a DSN's credentials."""
    raw = str(exc).strip()
    return mask_text(raw.splitlines()[0] if raw else type(exc).__name__, 300)


def json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value
