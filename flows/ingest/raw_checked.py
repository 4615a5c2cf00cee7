"""`quality.raw_checked`: the load runs whose raw rows passed the raw gate.

A run killed between its load and its gate leaves rows in raw and files in the ledger that no
gate has seen; the next run's raw gate checks them too (`unchecked_runs`).
"""

from __future__ import annotations

from flows import schemas
from flows.warehouse import Warehouse, table_columns

RAW_CHECKED = "quality.raw_checked"


def ensure_raw_checked(warehouse: Warehouse) -> None:
    """`quality.raw_checked`: the load runs whose raw rows passed the raw gate.

    Created before the first load that needs it. The runs already in the ledger then were
    gated by their own runs (this table did not exist yet), so they are recorded as checked.
    """
    with warehouse.connect() as con:
        if table_columns(con, RAW_CHECKED):
            return
        con.execute("begin transaction")
        schemas.ensure(con, RAW_CHECKED)
        if table_columns(con, "raw._load_ledger"):
            con.execute(
                f"insert into {RAW_CHECKED} select distinct run_id, current_timestamp "
                "from raw._load_ledger"
            )
        con.execute("commit")


def unchecked_runs(warehouse: Warehouse, run_id: str) -> list[str]:
    """Earlier runs whose loaded rows never passed the raw gate: a run killed between its
    load and its gate. Their rows are in raw and their files in the ledger (so they are not
    loaded again): this run's gate checks them too."""
    with warehouse.connect(read_only=True) as con:
        if not table_columns(con, RAW_CHECKED) or not table_columns(con, "raw._load_ledger"):
            return []
        rows = con.execute(
            f"select distinct run_id from raw._load_ledger where run_id <> ? and run_id not in "
            f"(select run_id from {RAW_CHECKED}) order by run_id",
            [run_id],
        ).fetchall()
    return [str(r[0]) for r in rows]


def mark_raw_checked(warehouse: Warehouse, run_ids: list[str]) -> None:
    with warehouse.connect() as con:
        if not table_columns(con, RAW_CHECKED):
            return
        con.execute("begin transaction")
        con.execute(
            f"delete from {RAW_CHECKED} where run_id in (select unnest(?::varchar[]))", [run_ids]
        )
        con.execute(
            f"insert into {RAW_CHECKED} select unnest(?::varchar[]), current_timestamp",
            [run_ids],
        )
        con.execute("commit")
