"""What a daily marts gate checks row by row: the rows the latest dbt build rewrote.

A daily build rewrites a few snapshot dates (the new as_of, dates whose inputs or labels
changed) and the months from the current one; every other row is as the last passing gate
saw it. The gate checks the row-local expectations of a table's suite on the rewritten rows
only and the rest (row counts, aggregates) on the whole table (`row_local`; flows/quality/
gx.py `validate_frame`), when two things hold:

- the build knows what it rewrote: the table is an incremental mart with a build-state row
  (`<schema>._incremental_builds.recomputed`, written by `snapshot_build_state_hook` in
  dbt_project/macros/snapshot_incremental.sql) that names dates or a first month;
- every build before this one passed the marts gate: `begin_marts_build` marks the marts
  ungated before each build and `marts_gated` clears the mark after a passing gate, so after
  a failed build, a failed gate or a crash between the two, the next gate checks whole tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from flows.files import write_atomic
from flows.settings import Settings
from flows.warehouse import table_columns


@dataclass(frozen=True)
class Scope:
    """The rows of a table a build rewrote: `where` selects them, on the table's `key`
    column; `what` says which in words."""

    key: str
    where: str
    what: str

    def describe(self, rows: int) -> str:
        return (
            f"{rows:,} rows of {self.what} checked row by row; row counts and other "
            "table-wide expectations on the whole table"
        )


# Expectations about single rows: the table meets them when each row does, so a suite scoped
# to the rows a build rewrote checks them on those rows only (the rest met them when they
# were written). Uniqueness over several columns counts when the columns hold the scope's
# key (a duplicate can only be within one key value, and a build replaces key values whole).
_ROW_LOCAL = ("expect_column_values_", "expect_column_pair_values_", "expect_multicolumn_sum_")
_NOT_ROW_LOCAL = (
    "expect_column_values_to_be_unique",
    "expect_column_values_to_be_increasing",
    "expect_column_values_to_be_decreasing",
)
_UNIQUE_OVER_COLUMNS = (
    "expect_compound_columns_to_be_unique",
    "expect_multicolumn_values_to_be_unique",
    "expect_select_column_values_to_be_unique_within_record",
)


def row_local(expectation: dict[str, Any], key: str) -> bool:
    """Whether an expectation holds for a table when it holds for each value of `key`."""
    kind = str(expectation.get("type", ""))
    if kind in _UNIQUE_OVER_COLUMNS:
        within_record = kind == "expect_select_column_values_to_be_unique_within_record"
        return within_record or key in (expectation.get("kwargs", {}).get("column_list") or [])
    return kind.startswith(_ROW_LOCAL) and kind not in _NOT_ROW_LOCAL


# What a build's `recomputed` says, and the rows it names; the key columns are those the
# pre-hooks replace whole (snapshot_dates_pre_hook, month_rebuild_pre_hook).
SNAPSHOT_KEY = "snapshot_date"
MONTH_KEY = "month_start"
_MONTHS_FROM = re.compile(r"months from (\d{4}-\d{2}-\d{2})")


def _marker(settings: Settings) -> Path:
    return settings.home / "quality" / "marts_ungated"


def begin_marts_build(settings: Settings) -> bool:
    """Before a dbt build that may rewrite the marts: whether every earlier build's marts
    passed the marts gate. Marks the marts ungated until `marts_gated`."""
    marker = _marker(settings)
    clean = not marker.exists()
    write_atomic(marker, datetime.now(UTC).isoformat(timespec="seconds"))
    return clean


def marts_gated(settings: Settings) -> None:
    """After a passing marts gate: the marts as built are checked."""
    _marker(settings).unlink(missing_ok=True)


def recomputed_scope(con: Any, table: str) -> Scope | None:
    """The rows of `table` ('schema.name') its latest build rewrote, or None when that is
    not known (not an incremental mart, a full build, a state row of an older version)."""
    schema, _, name = table.rpartition(".")
    state = f"{schema}._incremental_builds" if schema else "_incremental_builds"
    if "recomputed" not in table_columns(con, state):
        return None
    rows = con.execute(f"select recomputed from {state} where model_name = ?", [name]).fetchall()
    if len(rows) != 1 or rows[0][0] is None:
        return None
    return parse_recomputed(str(rows[0][0]))


def parse_recomputed(value: str) -> Scope | None:
    """A build state's `recomputed` as a Scope: 'none', dates 'YYYY-MM-DD,...', or 'months
    from YYYY-MM-DD'; None for 'all' and anything else."""
    value = value.strip()
    months = _MONTHS_FROM.fullmatch(value)
    if months:
        first = _day(months.group(1))
        if first is None:
            return None
        return Scope(MONTH_KEY, f"{MONTH_KEY} >= date '{first}'", f"the months from {first}")
    if value == "none":
        return Scope(SNAPSHOT_KEY, "false", "no snapshot date (the build rewrote none)")
    days = [_day(d) for d in value.split(",")]
    if not days or any(d is None for d in days):
        return None
    listed = ", ".join(f"date '{d}'" for d in days)
    return Scope(
        SNAPSHOT_KEY,
        f"{SNAPSHOT_KEY} in ({listed})",
        f"{SNAPSHOT_KEY} {', '.join(str(d) for d in days)}",
    )


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None
