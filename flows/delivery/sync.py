"""Reverse-ETL: send changed records from the serving file to destinations.

Syncs are declared in `config/syncs.yml`. For each sync the mapped fields of every source row
are hashed; the sync ledger in the warehouse (schema `sync`) keeps, per destination and key,
the hash the destination last ACCEPTED. A run sends only inserted, changed and (in mirror mode)
deleted records; what the destination accepted is recorded, what it rejected is recorded with
its reason in `sync.failed_records` and is sent again next run. Every run leaves one row in
`sync.runs`; a run with failed records is `partial`, never `success`.

The ledger is written after the destination answered, in one transaction. A process killed in
between leaves records the destination has and the ledger does not: the next run sends them
again, which every destination applies idempotently (an upsert keyed on the record: a CSV
import by key, `ON CONFLICT` in PostgreSQL, the record key for HTTP). So the ledger never
claims more than the destination holds, and one run later they agree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from flows import schemas
from flows.delivery.destinations import DestinationResult, build_destination
from flows.delivery.sync_config import SyncSpec
from flows.errors import SyncFailed
from flows.faults import crash_point
from flows.warehouse import Warehouse, sql_str

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    name: str
    rows_in: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: int = 0
    dry_run: bool = False
    status: str = "success"
    files: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return self.inserted + self.updated + self.deleted


def diff(con: duckdb.DuckDBPyConnection, spec: SyncSpec) -> pd.DataFrame:
    """Changed records: `_operation` (insert|update|delete), `_key`, `_hash`, mapped fields."""
    present = {r[0] for r in con.execute(f"describe serving.main.{spec.source}").fetchall()}
    missing = [c for c in dict.fromkeys([spec.key, *spec.fields.values()]) if c not in present]
    if missing:
        raise ValueError(
            f"sync {spec.name}: source table {spec.source} has no column(s) {', '.join(missing)}"
        )
    mapped = ", ".join(f'"{src}" as "{dest}"' for dest, src in spec.fields.items())
    packed = ", ".join(f'"{dest}" := "{dest}"' for dest in spec.fields)
    con.execute(
        f"""
        create or replace temp table _src as
        select *, md5(to_json(struct_pack({packed}))) as _hash
        from (select cast("{spec.key}" as varchar) as _key, {mapped} from serving.main.{spec.source})
        """
    )
    dupes = con.execute(
        "select _key from _src group by _key having count(*) > 1 limit 3"
    ).fetchall()
    if dupes:
        raise ValueError(
            f"sync {spec.name}: key {spec.key} is not unique in {spec.source} "
            f"(e.g. {[d[0] for d in dupes]})"
        )
    ops = ["update"] if spec.mode == "update_only" else ["insert", "update"]
    nulls = ", ".join(
        f'l.record_key as "{d}"' if src == spec.key else f'null as "{d}"'
        for d, src in spec.fields.items()
    )
    return con.execute(
        f"""
        with ledger as (
            select record_key, record_hash from sync.record_state where sync_name = $name
        ),
        changed as (
            select case when l.record_key is null then 'insert' else 'update' end as _operation,
                   s.*
            from _src s left join ledger l on l.record_key = s._key
            where l.record_hash is distinct from s._hash
        )
        select * from changed where _operation in ({", ".join(f"'{o}'" for o in ops)})
        union all
        select 'delete', l.record_key, {nulls}, null
        from ledger l anti join _src s on s._key = l.record_key
        where $mirror
        order by _key
        """,
        {"name": spec.name, "mirror": spec.mode == "mirror"},
    ).df()


def run_sync(
    spec: SyncSpec,
    serving_db: Path,
    warehouse: Warehouse,
    sync_dir: Path,
    run_id: str,
    *,
    dry_run: bool = False,
) -> SyncReport:
    """Diff one sync against its ledger, send the changes, record what was accepted."""
    report = SyncReport(name=spec.name, dry_run=dry_run)
    started = datetime.now(UTC).replace(tzinfo=None)
    with warehouse.connect() as con:
        schemas.ensure(con, *schemas.SYNC_LEDGER)
        con.execute(f"attach {sql_str(serving_db.as_posix())} as serving (read_only)")
        changes = diff(con, spec)
        rows_in = con.execute("select count(*) from _src").fetchone()
        report.rows_in = int(rows_in[0]) if rows_in else 0
        counts = changes["_operation"].value_counts().to_dict()
        report.inserted = int(counts.get("insert", 0))
        report.updated = int(counts.get("update", 0))
        report.deleted = int(counts.get("delete", 0))
        report.unchanged = report.rows_in - report.inserted - report.updated
        if dry_run:
            report.status = "dry_run"
            return report
        result = DestinationResult(accepted=set(), failed={})
        error: str | None = None
        try:
            if not changes.empty:
                _clean_temp_files(spec, sync_dir)
                destination = build_destination(spec, sync_dir)
                result = destination.send(changes, run_id)
                report.files = list(result.files)
                crash_point(f"sync.accepted.{spec.name}")
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            result = DestinationResult(accepted=set(), failed=dict.fromkeys(changes["_key"], error))
        _record(con, spec, changes, result, report, run_id, started, error)
        crash_point(f"sync.recorded.{spec.name}")
        if error:
            raise SyncFailed(f"sync {spec.name} failed: {error}")
    log.info(
        "sync %s: %s inserted, %s updated, %s deleted, %s unchanged, %s failed",
        spec.name,
        report.inserted,
        report.updated,
        report.deleted,
        report.unchanged,
        report.failed,
    )
    return report


def _clean_temp_files(spec: SyncSpec, sync_dir: Path) -> None:
    """A CSV file a killed process was writing (`.<name>.tmp`) was never accepted: remove it
    (one writer at a time: the caller holds the pipeline lock)."""
    if spec.destination.type != "csv":
        return
    folder = sync_dir / spec.destination.path
    for stale in sorted(folder.glob(f".{spec.name}_*.csv.tmp")) if folder.is_dir() else []:
        log.warning("sync %s: removing %s, left by an interrupted run", spec.name, stale)
        stale.unlink(missing_ok=True)


def _record(
    con: duckdb.DuckDBPyConnection,
    spec: SyncSpec,
    changes: pd.DataFrame,
    result: DestinationResult,
    report: SyncReport,
    run_id: str,
    started: datetime,
    error: str | None,
) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    accepted = changes[changes["_key"].isin(result.accepted)]
    failed = changes[changes["_key"].isin(result.failed.keys())]
    report.failed = len(failed)
    report.failures = [
        {"key": k, "operation": op, "reason": result.failed[k]}
        for k, op in zip(failed["_key"], failed["_operation"], strict=True)
    ][:50]
    # What was not accepted is not counted as sent.
    sent = accepted["_operation"].value_counts().to_dict()
    report.inserted = int(sent.get("insert", 0))
    report.updated = int(sent.get("update", 0))
    report.deleted = int(sent.get("delete", 0))
    report.status = "failed" if error else ("partial" if report.failed else "success")
    con.execute("begin transaction")
    try:
        con.register("_accepted", accepted[["_key", "_hash", "_operation"]])
        con.execute(
            "delete from sync.record_state where sync_name = ? and record_key in "
            "(select _key from _accepted)",
            [spec.name],
        )
        con.execute(
            "insert into sync.record_state select ?, _key, _hash, ?, ? from _accepted "
            "where _operation <> 'delete'",
            [spec.name, run_id, now],
        )
        if not failed.empty:
            rows = [
                (run_id, spec.name, k, op, result.failed[k], now)
                for k, op in zip(failed["_key"], failed["_operation"], strict=True)
            ]
            con.executemany("insert into sync.failed_records values (?, ?, ?, ?, ?, ?)", rows)
        con.execute(
            "insert into sync.runs values (?, ?, ?, ?, ?, false, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                spec.name,
                started,
                now,
                report.status,
                report.rows_in,
                report.inserted,
                report.updated,
                report.deleted,
                report.unchanged,
                report.failed,
                error,
            ],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_accepted")
