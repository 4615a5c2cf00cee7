"""Reverse-ETL destinations: CSV files for a CRM bulk import, a PostgreSQL table, an HTTP API.

Each destination gets the changed records of one sync (`_operation`, `_key`, `_hash` and the
mapped fields) and answers which keys it accepted and which it rejected, with the reason.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from flows.delivery.sync_config import HttpDestination, SyncSpec
from flows.errors import TransientHttpError
from flows.secrets import read_secret

log = logging.getLogger(__name__)


@dataclass
class DestinationResult:
    accepted: set[str]
    failed: dict[str, str]  # key -> reason
    files: list[str] = field(default_factory=list)


class Writer(Protocol):
    def send(self, changes: pd.DataFrame, run_id: str) -> DestinationResult: ...


def build_destination(spec: SyncSpec, sync_dir: Path) -> Writer:
    dest = spec.destination
    if dest.type == "csv":
        return CsvWriter(spec, sync_dir / dest.path)
    if dest.type == "postgres":
        dsn = read_secret(dest.dsn_env)
        if not dsn:
            raise ValueError(
                f"sync {spec.name}: environment variable {dest.dsn_env} (dsn_env) is not set "
                "and no secret file of that name is in EXPANSION_SECRETS_DIR"
            )
        return PostgresWriter(spec, dsn, dest.table)
    return HttpWriter(spec)


def _fields(changes: pd.DataFrame, spec: SyncSpec) -> pd.DataFrame:
    return changes[["_operation", *spec.fields]]


# --- CSV for a CRM bulk import ----------------------------------------------------------------


class CsvWriter:
    """Only the changed rows, one file per run, written whole then renamed into place."""

    def __init__(self, spec: SyncSpec, out_dir: Path) -> None:
        self.spec, self.out_dir = spec, out_dir

    def send(self, changes: pd.DataFrame, run_id: str) -> DestinationResult:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        final = self.out_dir / f"{self.spec.name}_{stamp}_{run_id[:8]}.csv"
        tmp = self.out_dir / f".{final.name}.tmp"
        frame = _fields(changes, self.spec).rename(columns={"_operation": "Operation"})
        frame.to_csv(tmp, index=False)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return DestinationResult(accepted=set(changes["_key"]), failed={}, files=[str(final)])


# --- PostgreSQL table ---------------------------------------------------------------------------


_PG_TYPES = {"b": "boolean", "i": "bigint", "u": "bigint", "f": "double precision"}
BOOKKEEPING = ("_sync_hash", "_synced_at", "_sync_run_id")


def _pg_type(series: pd.Series) -> str:
    if series.dtype.kind in _PG_TYPES:
        return _PG_TYPES[series.dtype.kind]
    if series.dtype.kind == "M":
        return "timestamp"
    sample = series.dropna()
    if not sample.empty and isinstance(sample.iloc[0], date | datetime):
        return "timestamp" if isinstance(sample.iloc[0], datetime) else "date"
    return "text"


class PostgresWriter:
    """COPY into a staging table, then one transaction: upsert where the hash differs, delete.

    The target table is created when missing: the key field as primary key, the mapped fields,
    and `_sync_hash` / `_synced_at` / `_sync_run_id` bookkeeping columns. When it exists, no DDL
    runs, so the destination works with a role that may only read and write that table
    (SELECT, INSERT, UPDATE, DELETE on it, USAGE on its schema; temporary tables are allowed
    to every role by default). A crash anywhere
    leaves the table with all of the run's changes or none; re-sending is harmless because an
    unchanged hash updates nothing.
    """

    def __init__(self, spec: SyncSpec, dsn: str, table: str) -> None:
        self.spec, self.dsn = spec, dsn
        self.schema, self.table = table.split(".")

    def send(self, changes: pd.DataFrame, run_id: str) -> DestinationResult:
        import psycopg
        from psycopg import sql

        spec = self.spec
        key = spec.key_field
        target = sql.Identifier(self.schema, self.table)
        cols = list(spec.fields)
        types = {c: _pg_type(changes.loc[changes["_operation"] != "delete", c]) for c in cols}
        types[key] = "text"
        ident = {c: sql.Identifier(c) for c in cols}
        try:
            conn = psycopg.connect(self.dsn, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise ConnectionError(
                f"PostgreSQL destination {self.schema}.{self.table}: {_mask(exc)}"
            ) from None
        with conn, conn.cursor() as cur:
            cur.execute("set time zone 'UTC'")
            cur.execute(
                "select column_name from information_schema.columns "
                "where table_schema = %s and table_name = %s",
                [self.schema, self.table],
            )
            existing = {row[0] for row in cur.fetchall()}
            if existing:
                # an existing table needs no DDL: a role that may only write it is enough
                missing = [c for c in [*cols, *BOOKKEEPING] if c not in existing]
                if missing:
                    raise ValueError(
                        f"PostgreSQL destination {self.schema}.{self.table} lacks the columns "
                        f"{missing} this sync writes (fields of sync {spec.name} plus "
                        f"{', '.join(BOOKKEEPING)})"
                    )
            else:
                cur.execute(
                    sql.SQL("create schema if not exists {}").format(sql.Identifier(self.schema))
                )
                cur.execute(
                    sql.SQL(
                        "create table {} ({}, _sync_hash text, _synced_at timestamptz, "
                        "_sync_run_id text, primary key ({}))"
                    ).format(
                        target,
                        sql.SQL(", ").join(
                            sql.SQL("{} {}").format(ident[c], sql.SQL(types[c])) for c in cols
                        ),
                        ident[key],
                    )
                )
            cur.execute(
                sql.SQL(
                    "create temp table _stage (_op text, _hash text, {}) on commit drop"
                ).format(
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(ident[c], sql.SQL(types[c])) for c in cols
                    )
                )
            )
            copy_sql = sql.SQL("copy _stage (_op, _hash, {}) from stdin").format(
                sql.SQL(", ").join(ident[c] for c in cols)
            )
            with cur.copy(copy_sql) as copy:
                for row in changes[["_operation", "_hash", *cols]].itertuples(index=False):
                    copy.write_row([_pg_value(v) for v in row])
            assignments = sql.SQL(", ").join(
                sql.SQL("{} = excluded.{}").format(ident[c], ident[c]) for c in cols if c != key
            )
            cur.execute(
                sql.SQL(
                    "insert into {t} ({cols}, _sync_hash, _synced_at, _sync_run_id) "
                    "select {cols}, _hash, now(), %s from _stage where _op <> 'delete' "
                    "on conflict ({key}) do update set {assign}, _sync_hash = excluded._sync_hash, "
                    "_synced_at = excluded._synced_at, _sync_run_id = excluded._sync_run_id "
                    "where {t}._sync_hash is distinct from excluded._sync_hash"
                ).format(
                    t=target,
                    cols=sql.SQL(", ").join(ident[c] for c in cols),
                    key=ident[key],
                    assign=assignments,
                ),
                [run_id],
            )
            cur.execute(
                sql.SQL(
                    "delete from {t} where {key} in (select {key} from _stage where _op = 'delete')"
                ).format(t=target, key=ident[key])
            )
        return DestinationResult(accepted=set(changes["_key"]), failed={})


def _pg_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def _mask(exc: Exception) -> str:
    """An error message without passwords."""
    import re

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"(password\s*=\s*)\S+", r"\1***", text, flags=re.I)
    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", text)


# --- HTTP JSON batch API ------------------------------------------------------------------------


class HttpWriter:
    """POST batches of records as JSON; read per-record results from the response.

    Request: `{"sync": name, "run_id": ..., "batch": n, "records": [{"operation": "upsert" |
    "delete", "key": ..., "fields": {...}}]}` with header `Idempotency-Key: <run id>-<batch>`
    (a retried batch carries the same key, so the endpoint can apply it once). Response: `{"results":
    [{"key": ..., "status": "ok" | "error", "error": "..."}]}`; a key missing from the results
    counts as failed. Transient failures are retried with exponential backoff; a batch that
    still fails marks its records failed (sent again next run).
    """

    def __init__(self, spec: SyncSpec) -> None:

        assert isinstance(spec.destination, HttpDestination)
        self.spec, self.dest = spec, spec.destination

    def _headers(self, run_id: str, batch: int) -> dict[str, str]:
        headers = {"Idempotency-Key": f"{run_id}-{batch}", "Content-Type": "application/json"}
        for header, env in self.dest.headers_env.items():
            value = read_secret(env)
            if value is None:
                raise ValueError(
                    f"sync {self.spec.name}: environment variable {env} is not set and no "
                    "secret file of that name is in EXPANSION_SECRETS_DIR"
                )
            headers[header] = value
        return headers

    def send(self, changes: pd.DataFrame, run_id: str) -> DestinationResult:
        import httpx
        from tenacity import (
            retry,
            retry_if_exception_type,
            stop_after_attempt,
            wait_exponential,
        )

        result = DestinationResult(accepted=set(), failed={})
        records = [
            {
                "operation": "delete" if op == "delete" else "upsert",
                "key": key,
                "fields": {}
                if op == "delete"
                else {f: _json_value(row[f]) for f in self.spec.fields},
            }
            for op, key, row in zip(
                changes["_operation"], changes["_key"], changes.to_dict("records"), strict=True
            )
        ]

        @retry(
            retry=retry_if_exception_type(TransientHttpError),
            stop=stop_after_attempt(self.dest.max_attempts),
            wait=wait_exponential(multiplier=self.dest.backoff_seconds, max=60),
            reraise=True,
        )
        def post(client: httpx.Client, batch: int, body: dict[str, Any]) -> dict[str, Any]:
            try:
                response = client.post(
                    self.dest.url, content=json.dumps(body), headers=self._headers(run_id, batch)
                )
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                raise TransientHttpError(f"{type(exc).__name__}: {exc}") from None
            if response.status_code == 429 or response.status_code >= 500:
                raise TransientHttpError(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                raise ValueError(f"HTTP {response.status_code}: {response.text[:200]}")
            payload: dict[str, Any] = response.json()
            return payload

        size = self.dest.batch_size
        with httpx.Client(timeout=self.dest.timeout_seconds) as client:
            for batch, start in enumerate(range(0, len(records), size), start=1):
                chunk = records[start : start + size]
                body = {"sync": self.spec.name, "run_id": run_id, "batch": batch, "records": chunk}
                keys = [r["key"] for r in chunk]
                try:
                    payload = post(client, batch, body)
                except (TransientHttpError, ValueError) as exc:
                    reason = f"batch {batch} not delivered: {exc}"
                    log.warning("sync %s: %s", self.spec.name, reason)
                    result.failed.update(dict.fromkeys(keys, reason))
                    continue
                answered = {str(r.get("key")): r for r in payload.get("results", [])}
                for key in keys:
                    answer = answered.get(key)
                    if answer is None:
                        result.failed[key] = "no result for this record in the response"
                    elif answer.get("status") == "ok":
                        result.accepted.add(key)
                    else:
                        result.failed[key] = str(answer.get("error") or "rejected")
        return result


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value
