"""Reverse-ETL: send changed records from the serving file to destinations.

Syncs are declared in `config/syncs.yml`. For each sync the mapped fields of every source row
are hashed; the sync ledger in the warehouse (schema `sync`) keeps, per destination and key,
the hash the destination last ACCEPTED. A run sends only inserted, changed and (in mirror mode)
deleted records; what the destination accepted is recorded, what it rejected is recorded with
its reason in `sync.failed_records` and is sent again next run, what it skipped (`update_only`:
it holds no record of that key) is counted and forgotten by the ledger, so it is offered again
next run. Every run leaves one row in `sync.runs`; a run with failed records is `partial`,
never `success`; a destination that could not be used at all (unreachable, misconfigured) is
`failed`, with every record recorded as failed.

`full_resync` sends every record of the current publication whatever the ledger says, and
destinations rewrite what they hold (a row deleted or edited at the destination comes back).

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
from typing import Any

import duckdb
import pandas as pd

from flows import schemas
from flows.delivery.destination_base import DestinationResult, json_value, mask
from flows.delivery.destinations import build_destination
from flows.delivery.sync_config import SyncSpec, load_syncs
from flows.errors import SyncFailed
from flows.faults import crash_point
from flows.settings import Settings
from flows.warehouse import Warehouse, sql_str

log = logging.getLogger(__name__)

SAMPLE_SIZE = 5


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
    status: str = "success"  # success | partial | failed | dry_run
    files: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    skipped: int = 0  # update_only: records the destination does not hold
    full_resync: bool = False
    error: str | None = None  # why the destination could not be used at all
    check: str | None = None  # dry run: what the connection check found
    sample: list[dict[str, Any]] = field(default_factory=list)  # dry run: first records

    @property
    def sent(self) -> int:
        return self.inserted + self.updated + self.deleted


def diff(
    con: duckdb.DuckDBPyConnection, spec: SyncSpec, *, full_resync: bool = False
) -> pd.DataFrame:
    """Changed records: `_operation` (insert|update|delete), `_key`, `_hash`, mapped fields.

    `update_only` sends every record the destination has not accepted at this hash as an
    `update` (the destination matches it by key and skips it when it holds no such record).
    `full_resync`: every source record, whatever the ledger says (and, in mirror mode, a delete
    for every ledger key the source no longer has)."""
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
    nulls = ", ".join(
        f'l.record_key as "{d}"' if src == spec.key else f'null as "{d}"'
        for d, src in spec.fields.items()
    )
    return con.execute(
        f"""
        with ledger as (
            select record_key, record_hash from sync.record_state where sync_name = $name
        )
        select case when $update_only then 'update'
                    when l.record_key is null then 'insert' else 'update' end as _operation,
               s.*
        from _src s left join ledger l on l.record_key = s._key
        where $full or l.record_hash is distinct from s._hash
        union all
        select 'delete', l.record_key, {nulls}, null
        from ledger l anti join _src s on s._key = l.record_key
        where $mirror
        order by _key
        """,
        {
            "name": spec.name,
            "mirror": spec.mode == "mirror",
            "update_only": spec.mode == "update_only",
            "full": full_resync,
        },
    ).df()


def _ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    schemas.ensure(con, *schemas.SYNC_LEDGER)


def run_sync(
    spec: SyncSpec,
    serving_db: Path,
    warehouse: Warehouse,
    sync_dir: Path,
    run_id: str,
    *,
    dry_run: bool = False,
    full_resync: bool = False,
) -> SyncReport:
    """Diff one sync against its ledger, send the changes, record what was accepted. Raises
    SyncFailed (after recording every record as failed) when the destination could not be
    used at all; a dry run raises it when the destination's check fails."""
    report = sync_one(
        spec, serving_db, warehouse, sync_dir, run_id, dry_run=dry_run, full_resync=full_resync
    )
    if report.status == "failed":
        raise SyncFailed(f"sync {spec.name} failed: {report.error}")
    return report


def sync_one(
    spec: SyncSpec,
    serving_db: Path,
    warehouse: Warehouse,
    sync_dir: Path,
    run_id: str,
    *,
    dry_run: bool = False,
    full_resync: bool = False,
) -> SyncReport:
    """`run_sync` that reports a destination it could not use (status `failed`, `error`)
    instead of raising."""
    report = SyncReport(name=spec.name, dry_run=dry_run, full_resync=full_resync)
    started = datetime.now(UTC).replace(tzinfo=None)
    with warehouse.connect() as con:
        _ensure_ledger(con)
        con.execute(f"attach {sql_str(serving_db.as_posix())} as serving (read_only)")
        changes = diff(con, spec, full_resync=full_resync)
        rows_in = con.execute("select count(*) from _src").fetchone()
        report.rows_in = int(rows_in[0]) if rows_in else 0
        _count(report, changes, spec.mode)
        if dry_run:
            _dry_run(spec, sync_dir, changes, report)
            return report
        result = DestinationResult(accepted=set(), failed={})
        error: str | None = None
        try:
            if not changes.empty:
                _clean_temp_files(spec, sync_dir)
                destination = build_destination(spec, sync_dir)
                result = destination.send(changes, run_id, force=full_resync)
                report.files = list(result.files)
                crash_point(f"sync.accepted.{spec.name}")
        except Exception as exc:
            error = f"{type(exc).__name__}: {mask(exc)}"
            log.error("sync %s: destination not usable, nothing sent: %s", spec.name, error)
            result = DestinationResult(accepted=set(), failed=dict.fromkeys(changes["_key"], error))
        _record(con, spec, changes, result, report, run_id, started, error)
        crash_point(f"sync.recorded.{spec.name}")
    log.info(
        "sync %s: %s inserted, %s updated, %s deleted, %s skipped, %s unchanged, %s failed%s",
        spec.name,
        report.inserted,
        report.updated,
        report.deleted,
        report.skipped,
        report.unchanged,
        report.failed,
        " (full resync)" if full_resync else "",
    )
    return report


def sync_all(
    settings: Settings,
    run_id: str,
    *,
    dry_run: bool = False,
    full_resync: bool = False,
    names: list[str] | None = None,
) -> list[SyncReport]:
    """Every sync in config/syncs.yml (or those named), in order; a destination that fails
    does not stop the others, and its report says why (status `failed`)."""
    specs = load_syncs(settings.syncs_file)
    if names:
        unknown = sorted(set(names) - {s.name for s in specs})
        if unknown:
            raise ValueError(
                f"no sync named {', '.join(unknown)} in {settings.syncs_file} "
                f"(syncs: {', '.join(s.name for s in specs)})"
            )
        specs = [s for s in specs if s.name in names]
    return [
        sync_one(
            spec,
            settings.serving_db,
            Warehouse.from_settings(settings),
            settings.sync,
            run_id,
            dry_run=dry_run,
            full_resync=full_resync,
        )
        for spec in specs
    ]


def _count(
    report: SyncReport, changes: pd.DataFrame, mode: str, existing: set[str] | None = None
) -> None:
    """Records per action; with `existing` (the changed keys the destination holds, as a dry
    run's check found them) insert/update/skip say what the destination would do."""
    ops = changes["_operation"]
    writes = ops != "delete"
    if existing is not None:
        held = changes["_key"].isin(existing)
        report.updated = int((writes & held).sum())
        if mode == "update_only":
            report.inserted, report.skipped = 0, int((writes & ~held).sum())
        else:
            report.inserted = int((writes & ~held).sum())
    else:
        report.inserted = int((ops == "insert").sum())
        report.updated = int((ops == "update").sum())
    report.deleted = int((~writes).sum())
    report.unchanged = report.rows_in - int(writes.sum())


def _dry_run(spec: SyncSpec, sync_dir: Path, changes: pd.DataFrame, report: SyncReport) -> None:
    """Try the destination (nothing is sent or written), count per action, keep a sample."""
    report.status = "dry_run"
    report.sample = [
        {
            "operation": op,
            **{f: "***" if f in spec.masked_fields else json_value(row[f]) for f in spec.fields},
        }
        for op, row in zip(
            changes["_operation"][:SAMPLE_SIZE],
            changes.head(SAMPLE_SIZE).to_dict("records"),
            strict=True,
        )
    ]
    try:
        check = build_destination(spec, sync_dir).check(changes)
    except Exception as exc:
        report.status, report.error = "failed", f"{type(exc).__name__}: {mask(exc)}"
        log.error("sync %s: dry run: %s", spec.name, report.error)
        return
    report.check = check.detail
    if check.existing is not None:
        _count(report, changes, spec.mode, check.existing)
        for row in report.sample:
            if row["operation"] != "delete":
                held = str(row[spec.key_field]) in check.existing
                absent = "skip" if spec.mode == "update_only" else "insert"
                row["operation"] = "update" if held else absent


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
    """The destination's answer into the ledger, in one transaction: accepted records at their
    new hash (deleted ones out), skipped ones out (the destination does not hold them),
    failed ones kept at the hash the destination last accepted, plus their reasons."""
    now = datetime.now(UTC).replace(tzinfo=None)
    answered = result.accepted | result.skipped | set(result.failed)
    for key in set(changes["_key"]) - answered:  # a destination must answer for every record
        result.failed[key] = "the destination gave no answer for this record"
    accepted = changes[changes["_key"].isin(result.accepted - set(result.failed))]
    skipped = changes[changes["_key"].isin(result.skipped - set(result.failed))]
    failed = changes[changes["_key"].isin(result.failed.keys())]
    report.failed, report.skipped, report.error = len(failed), len(skipped), error
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
    settled = pd.concat(
        [
            accepted[["_key", "_hash", "_operation"]],
            skipped[["_key", "_hash"]].assign(_operation="skip"),
        ]
    )
    con.execute("begin transaction")
    try:
        con.register("_settled", settled)
        con.execute(
            "delete from sync.record_state where sync_name = ? and record_key in "
            "(select _key from _settled)",
            [spec.name],
        )
        con.execute(
            "insert into sync.record_state select ?, _key, _hash, ?, ? from _settled "
            "where _operation not in ('delete', 'skip')",
            [spec.name, run_id, now],
        )
        if not failed.empty:
            rows = [
                (run_id, spec.name, k, op, result.failed[k], now)
                for k, op in zip(failed["_key"], failed["_operation"], strict=True)
            ]
            con.executemany("insert into sync.failed_records values (?, ?, ?, ?, ?, ?)", rows)
        con.execute(
            "insert into sync.runs (run_id, sync_name, started_at, finished_at, status, dry_run, "
            "rows_in, inserted, updated, deleted, unchanged, failed, error, skipped, full_resync) "
            "values (?, ?, ?, ?, ?, false, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                report.skipped,
                report.full_resync,
            ],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_settled")
