"""What raw holds and which load put it there: the raw tables, the load ledger, taking a run back.

Every contract table has one raw table, `raw.<source>__<table>`, append-only, each row with
its lineage (`_source_file`, `_row`, `_loaded_at`, `_run_id`) and the file's unknown columns
as JSON (`_extra`). The ledger `raw._load_ledger` records every extract loaded: file, rows,
checksum, watermark, run id; its DDL and that of `raw._quarantine` are in `flows/schemas.py`.
`LedgerView` is what connectors ask of the ledger, so nothing is loaded twice; `unload_run`
takes a run's rows and ledger entries back.
"""

from __future__ import annotations

import logging
from datetime import datetime

from flows.ingest.contract import TABLES, Table
from flows.ingest.report import DuplicateFile, LoadedFile
from flows.schemas import LOAD_LEDGER, ensure
from flows.warehouse import Connection, Warehouse

log = logging.getLogger(__name__)

LINEAGE = {
    "_source_file": "VARCHAR",
    "_loaded_at": "TIMESTAMP",
    "_run_id": "VARCHAR",
    "_extra": "JSON",
    "_row": "BIGINT",  # the row of `_source_file` (1 = the first data row), where recorded
}


def ensure_raw_schema(con: Connection) -> None:
    """Create raw tables (one per contract table, possibly empty), the ledger and quarantine;
    add the columns a newer contract has to raw tables created before."""
    con.execute("create schema if not exists raw")
    for t in TABLES:
        cols = [f'"{c.name}" {c.type}' for c in t.columns]
        cols += [f"{name} {type_}" for name, type_ in LINEAGE.items()]
        con.execute(f"create table if not exists raw.{t.raw_relation} ({', '.join(cols)})")
        # a raw table from an earlier contract gets the columns added since (empty on its rows)
        for column in [*cols[: len(t.columns)], "_extra JSON", "_row BIGINT"]:
            con.execute(f"alter table raw.{t.raw_relation} add column if not exists {column}")
    ensure(con, *LOAD_LEDGER)


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


class LedgerView:
    """What the ledger already holds, as connectors need it.

    A file whose content (SHA-256) was loaded before is skipped; so is a second file with the
    same content as one seen earlier in this run, so a copy under a new name never loads twice.
    Copies under another name are listed in `duplicates` and logged.
    """

    def __init__(self, con: Connection, *, ignore: bool) -> None:
        self.skipped = 0
        self.duplicates: list[DuplicateFile] = []
        if ignore:
            self._seen: dict[str, str] = {}
            self._watermarks: dict[str, str] = {}
            return
        self._seen = dict(
            con.execute(
                "select sha256, arg_min(file_path, loaded_at) from raw._load_ledger group by 1"
            ).fetchall()
        )
        # The watermark of each table's latest load (watermarks only grow; comparing them as
        # text would put "9" after "10").
        self._watermarks = dict(
            con.execute(
                "select table_name, arg_max(watermark, loaded_at) from raw._load_ledger "
                "where watermark is not null group by 1"
            ).fetchall()
        )

    def seen(self, fingerprint: str, origin: str | None = None) -> bool:
        earlier = self._seen.get(fingerprint)
        if earlier is not None:
            self.skipped += 1
            # another name: a copy (the same name under a moved landing zone is no news)
            if origin is not None and _name(earlier) != _name(origin):
                self.duplicates.append(DuplicateFile(origin, earlier))
                log.warning(
                    "not loading %s: it has the same content (sha256 %s) as %s",
                    origin,
                    fingerprint[:12],
                    earlier,
                )
            return True
        if origin is not None:
            self._seen[fingerprint] = origin  # a copy later in this run is a duplicate
        return False

    def last_watermark(self, table: Table) -> str | None:
        return self._watermarks.get(f"{table.source}.{table.name}")


def record_loads(
    con: Connection, run_id: str, loaded: list[LoadedFile], loaded_at: datetime
) -> None:
    """Enter the files of a load in the ledger (inside the load's transaction)."""
    for f in loaded:
        con.execute(
            "insert into raw._load_ledger (run_id, table_name, file_path, sha256, row_count, "
            "loaded_at, watermark, status, quarantined_rows) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                f.table,
                f.path,
                f.sha256,
                f.rows,
                loaded_at,
                f.watermark,
                f.status,
                f.quarantined_rows,
            ],
        )
        log.info("loaded %s rows of %s from %s", f.rows, f.table, f.path)


def unload_run(warehouse: Warehouse, run_id: str) -> int:
    """Take back everything one run loaded (used when the raw gate rejects it).

    The files stay where they are and are not in the ledger any more, so the next run tries
    them again: nothing is lost, and nothing unchecked reaches the marts.
    """
    removed = 0
    with warehouse.connect() as con:
        try:
            con.execute("begin transaction")
            for t in TABLES:
                row = con.execute(
                    f"select count(*) from raw.{t.raw_relation} where _run_id = ?", [run_id]
                ).fetchone()
                removed += int(row[0]) if row else 0
                con.execute(f"delete from raw.{t.raw_relation} where _run_id = ?", [run_id])
            con.execute("delete from raw._load_ledger where run_id = ?", [run_id])
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    log.warning("took back %s raw rows loaded by run %s", removed, run_id)
    return removed
