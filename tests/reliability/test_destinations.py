"""Destinations like Hightouch's: what a careless or hostile destination does to a sync.

- HTTP: `Retry-After` (seconds and HTTP date) is honoured for 429 and 503, bounded by
  `max_retry_after_seconds` (beyond it the batch fails and the later batches are not sent); a
  bad answer to one batch (malformed body, a 4xx, a 5xx after the retries, a timeout) fails that
  batch only; `update_only` records the endpoint does not hold are skipped, not failed.
- PostgreSQL: a record breaking a CHECK, NOT NULL or the column's type is rejected alone, with
  the database's SQLSTATE and message; a lost connection leaves the table as it was;
  `update_only` updates the rows the table holds, matched by key; `full_resync` restores rows
  deleted or edited at the destination; `--dry-run` connects and checks the table, or fails
  naming what is wrong, and sends nothing.
- `expansion sync` exits 7 when any record was rejected.

Every case asserts what is named, that the ledger matches what the destination holds, and that
nothing else was sent. Waits are read from a patched sleep, never timed.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

import flows.delivery.destination_http as destination_http
from flows.delivery.destination_http import retry_after_seconds
from flows.delivery.sync import SyncReport, run_sync, sync_one
from flows.delivery.sync_config import SyncSpec
from flows.errors import EXIT_PARTIAL, SyncFailed, exit_code
from flows.warehouse import Warehouse

FIELDS = {"AccountId": "account_id", "Score__c": "p_expansion", "Decile__c": "decile"}


def serving(path: Path, rows: list[tuple[Any, ...]]) -> Path:
    """account_scores with (account_id, p_expansion, decile) rows."""
    con = duckdb.connect(str(path))
    con.execute(
        "create or replace table account_scores "
        "(account_id varchar, p_expansion double, decile double)"
    )
    con.executemany("insert into account_scores values (?, ?, ?)", rows)
    con.close()
    return path


def spec(destination: dict[str, Any], mode: str = "upsert", **extra: Any) -> SyncSpec:
    return SyncSpec.model_validate(
        {
            "name": "crm",
            "source": "account_scores",
            "key": "account_id",
            "mode": mode,
            "destination": destination,
            "fields": FIELDS,
            **extra,
        }
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, Path]:
    return {"serving": tmp_path / "s.duckdb", "wh": tmp_path / "wh.duckdb", "dir": tmp_path / "out"}


def sync(env: dict[str, Path], s: SyncSpec, run_id: str, **kw: Any) -> SyncReport:
    return sync_one(s, env["serving"], Warehouse(env["wh"]), env["dir"], run_id, **kw)


def ledger(env: dict[str, Path]) -> dict[str, Any]:
    """What the ledger says: keys accepted (record_state), failed records, runs."""
    if not env["wh"].exists():
        return {"accepted": set(), "failed": {}, "runs": []}
    con = duckdb.connect(str(env["wh"]), read_only=True)
    try:
        return {
            "accepted": {
                r[0] for r in con.execute("select record_key from sync.record_state").fetchall()
            },
            "failed": dict(
                con.execute("select record_key, reason from sync.failed_records").fetchall()
            ),
            "runs": con.execute(
                "select run_id, status, inserted, updated, skipped, failed from sync.runs "
                "order by started_at"
            ).fetchall(),
        }
    finally:
        con.close()


def rows(n: int, prefix: str = "A") -> list[tuple[Any, ...]]:
    return [(f"{prefix}{i:03d}", round(i / (n + 1), 4), float(i % 10 + 1)) for i in range(n)]


# --- HTTP -------------------------------------------------------------------------------------


class Api:
    """A batch API on 127.0.0.1. `script[batch]` is a list of answers for successive requests of
    that batch number: ("status", code, headers, body) or ("sleep", seconds); once a batch's
    script is used up it is applied (per idempotency key) and answered record by record.
    `held`: for `update` operations, the keys the API holds (others answer `skipped`)."""

    def __init__(self, script: dict[int, list[tuple[Any, ...]]] | None = None) -> None:
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.applied: dict[str, dict[str, Any]] = {}
        self.held: set[str] | None = None
        self.requests: list[int] = []  # batch number of every POST
        self.gets = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, code: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                api.gets += 1
                self._answer(200, b"{}", {})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                batch = body["batch"]
                api.requests.append(batch)
                steps = api.script.get(batch) or []
                if steps:
                    step = steps.pop(0)
                    if step[0] == "sleep":
                        time.sleep(step[1])
                        return
                    _, code, headers, raw = step
                    self._answer(code, raw.encode(), headers)
                    return
                results = []
                for r in body["records"]:
                    held = api.held
                    if r["operation"] == "update" and held is not None and r["key"] not in held:
                        results.append({"key": r["key"], "status": "skipped"})
                        continue
                    api.applied[r["key"]] = r
                    results.append({"key": r["key"], "status": "ok"})
                self._answer(200, json.dumps({"results": results}).encode(), {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/batch"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def api_factory() -> Iterator[Any]:
    made: list[Api] = []

    def make(script: dict[int, list[tuple[Any, ...]]] | None = None) -> Api:
        made.append(Api(script))
        return made[-1]

    yield make
    for api in made:
        api.server.shutdown()
        api.server.server_close()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The seconds tenacity waited between attempts (nothing really waits)."""
    seen: list[float] = []
    monkeypatch.setattr(destination_http, "_pause", seen.append)
    return seen


def http(api: Api, **kw: Any) -> dict[str, Any]:
    return {"type": "http", "url": api.url, "batch_size": 4, "backoff_seconds": 0.01, **kw}


def batch_keys(n: int, batch: int, size: int = 4) -> set[str]:
    return {f"A{i:03d}" for i in range((batch - 1) * size, min(batch * size, n))}


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("20", now) == 20
    assert retry_after_seconds("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0  # in the past
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_http_retry_after_is_honoured_in_seconds_and_as_a_date(
    env: dict[str, Path], api_factory: Any, waits: list[float]
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    api = api_factory(
        {
            1: [("status", 429, {"Retry-After": "2"}, "")],
            2: [("status", 503, {"Retry-After": when}, "")],
            3: [("status", 429, {}, "")],  # no Retry-After: exponential backoff
        }
    )
    serving(env["serving"], rows(10))
    report = sync(env, spec(http(api)), "r1")
    assert report.status == "success" and report.inserted == 10
    assert waits[0] == 2.0  # not 1 s
    assert 0 < waits[1] <= 5.0  # the date: 5 s ahead of the test's start, at most
    assert waits[2] == pytest.approx(0.01)  # backoff_seconds x 1
    assert api.requests == [1, 1, 2, 2, 3, 3]
    assert set(api.applied) == ledger(env)["accepted"] == {f"A{i:03d}" for i in range(10)}


def test_http_retry_after_beyond_the_maximum_fails_that_batch_and_sends_no_more(
    env: dict[str, Path], api_factory: Any, waits: list[float]
) -> None:
    api = api_factory({2: [("status", 429, {"Retry-After": "3600"}, "")]})
    serving(env["serving"], rows(10))
    report = sync(env, spec(http(api, max_retry_after_seconds=5)), "r1")
    assert waits == []  # nothing waited an hour, nor 5 s
    assert api.requests == [1, 2]  # batch 3 never sent: the endpoint asked us to stop
    assert report.status == "partial" and (report.inserted, report.failed) == (4, 6)
    state = ledger(env)
    assert state["accepted"] == set(api.applied) == batch_keys(10, 1)
    assert set(state["failed"]) == batch_keys(10, 2) | batch_keys(10, 3)
    reason = state["failed"]["A004"]
    assert "batch 2" in reason and "Retry-After '3600'" in reason
    assert "max_retry_after_seconds (5 s)" in reason
    assert "not sent: after batch 2" in state["failed"]["A008"]

    again = sync(env, spec(http(api, max_retry_after_seconds=5)), "r2")  # the API recovered
    assert again.status == "success" and again.inserted == 6
    assert ledger(env)["accepted"] == set(api.applied) == {f"A{i:03d}" for i in range(10)}


BAD_ANSWERS = {
    "malformed JSON": ([("status", 200, {}, "{not json")] * 1, "malformed response"),
    "results not a list": ([("status", 200, {}, '{"results": "ok"}')], "results: "),
    "unknown status": (
        [("status", 200, {}, '{"results": [{"key": "A004", "status": "maybe"}]}')],
        "results.0.status",
    ),
    "400": ([("status", 400, {}, "bad field Decile__c")], "HTTP 400: bad field Decile__c"),
    "500 after retries": ([("status", 500, {}, "")] * 3, "HTTP 500"),
    "timeout": ([("sleep", 0.6)] * 3, "ReadTimeout"),
}


@pytest.mark.parametrize("case", list(BAD_ANSWERS))
def test_http_bad_answer_fails_its_own_batch_only(
    case: str, env: dict[str, Path], api_factory: Any, waits: list[float]
) -> None:
    script, named = BAD_ANSWERS[case]
    api = api_factory({2: script})
    serving(env["serving"], rows(10))
    report = sync(env, spec(http(api, max_attempts=3, timeout_seconds=0.3)), "r1")
    assert report.status == "partial"
    assert (report.inserted, report.failed) == (6, 4)
    state = ledger(env)
    # batches 1 and 3 delivered and recorded; batch 2 failed, named, nothing else
    assert state["accepted"] == set(api.applied) == batch_keys(10, 1) | batch_keys(10, 3)
    assert set(state["failed"]) == batch_keys(10, 2)
    assert all(
        r.startswith("batch 2 not delivered") and named in r for r in state["failed"].values()
    )
    assert state["runs"] == [("r1", "partial", 6, 0, 0, 4)]


def test_http_update_only_skips_records_the_endpoint_does_not_hold(
    env: dict[str, Path], api_factory: Any
) -> None:
    api = api_factory()
    api.held = {"A000", "A002"}
    serving(env["serving"], rows(4))
    report = sync(env, spec(http(api), "update_only"), "r1")
    assert (report.updated, report.skipped, report.failed, report.status) == (2, 2, 0, "success")
    assert {r["operation"] for r in api.applied.values()} == {"update"}
    state = ledger(env)
    assert state["accepted"] == set(api.applied) == {"A000", "A002"} and state["failed"] == {}
    api.held.add("A001")  # created in the CRM since: the next run updates it
    again = sync(env, spec(http(api), "update_only"), "r2")
    assert (again.updated, again.skipped) == (1, 1)
    assert ledger(env)["accepted"] == set(api.applied) == {"A000", "A001", "A002"}


def test_http_dry_run_connects_sends_nothing_and_masks_the_sample(
    env: dict[str, Path], api_factory: Any
) -> None:
    api = api_factory()
    serving(env["serving"], rows(7))
    ok = sync(env, spec(http(api), masked_fields=["Score__c"]), "r1", dry_run=True)
    assert ok.status == "dry_run" and ok.inserted == 7
    assert f"127.0.0.1:{api.port}" in (ok.check or "") and "no request sent" in (ok.check or "")
    assert [r["AccountId"] for r in ok.sample] == ["A000", "A001", "A002", "A003", "A004"]
    assert {r["Score__c"] for r in ok.sample} == {"***"}
    assert ok.sample[1]["Decile__c"] == 2.0

    probe = sync(
        env, spec(http(api, check_url=api.url.replace("/batch", "/health"))), "r2", dry_run=True
    )
    assert probe.status == "dry_run" and "HTTP 200" in (probe.check or "") and api.gets == 1

    with socket.socket() as bound:  # a port held but not listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        closed = {**http(api), "url": f"http://127.0.0.1:{port}/batch"}
        down = sync(env, spec(closed), "r3", dry_run=True)
    assert down.status == "failed"
    assert f"cannot connect to 127.0.0.1:{port}" in (down.error or "")
    assert api.requests == [] and ledger(env)["runs"] == []  # nothing sent, nothing recorded


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def pg(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TEST_DEST_DSN", pg_database)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("create schema crm")
        conn.execute(
            'create table crm.scores ("AccountId" text primary key, '
            '"Score__c" double precision constraint score_range check ("Score__c" between 0 and 1), '
            '"Decile__c" integer not null, _sync_hash text, _synced_at timestamptz, '
            "_sync_run_id text)"
        )
    return pg_database


PG = {"type": "postgres", "dsn_env": "TEST_DEST_DSN", "table": "crm.scores", "batch_size": 40}


def table(dsn: str) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return {
            r[0]: r[1:]
            for r in conn.execute('select "AccountId", "Score__c", "Decile__c" from crm.scores')
        }


@pytest.mark.postgres
def test_postgres_rejects_only_the_bad_records_with_the_database_reason(
    env: dict[str, Path], pg: str
) -> None:
    data = rows(102)
    data[3] = ("A003", 1.5, 4.0)  # CHECK score_range, batch 1
    data[50] = ("A050", 0.5, 3.5)  # a fraction into an integer column, batch 2
    data[90] = ("A090", 0.5, None)  # NOT NULL, batch 3
    serving(env["serving"], data)
    report = sync(env, spec(PG), "r1")
    assert report.status == "partial" and (report.inserted, report.failed) == (99, 3)
    state = ledger(env)
    held = table(pg)
    assert set(held) == state["accepted"] and len(held) == 99
    assert set(state["failed"]) == {"A003", "A050", "A090"}
    assert state["failed"]["A003"].startswith("SQLSTATE 23514 CheckViolation")
    assert "constraint score_range" in state["failed"]["A003"]
    assert state["failed"]["A050"].startswith("SQLSTATE 22P02")
    assert 'type integer: "3.5"' in state["failed"]["A050"]
    assert state["failed"]["A090"].startswith("SQLSTATE 23502 NotNullViolation")
    assert "column Decile__c" in state["failed"]["A090"]
    assert not any("5432" in r or "postgres" in r.lower() for r in state["failed"].values())
    assert held["A004"] == (data[4][1], 5)

    data[3], data[50], data[90] = ("A003", 0.9, 4.0), ("A050", 0.5, 3.0), ("A090", 0.5, 1.0)
    serving(env["serving"], data)
    fixed = sync(env, spec(PG), "r2")  # only the three go again
    assert (fixed.inserted, fixed.failed, fixed.status) == (3, 0, "success")
    assert set(table(pg)) == ledger(env)["accepted"] and len(table(pg)) == 102


@pytest.mark.postgres
def test_postgres_values_that_do_not_fit_are_rejected_alone_never_cut(pg_database: str) -> None:
    """Text too long for varchar(5) (never truncated), a NUL byte (refused before it is sent),
    a duplicate of another unique column."""
    from flows.delivery.destination_postgres import PostgresWriter

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(
            'create table public.notes ("Id" text primary key, "Note" varchar(5) unique, '
            "_sync_hash text, _synced_at timestamptz, _sync_run_id text)"
        )
    notes = SyncSpec.model_validate(
        {
            "name": "notes",
            "source": "t",
            "key": "id",
            "destination": {"type": "postgres", "dsn_env": "X", "table": "public.notes"},
            "fields": {"Id": "id", "Note": "note"},
        }
    )
    values = {"a": "ok", "b": "nul\x00", "c": "too long", "d": "fine", "e": "ok"}
    changes = pd.DataFrame(
        {
            "_operation": "insert",
            "_key": list(values),
            "_hash": "h",
            "Id": list(values),
            "Note": list(values.values()),
        }
    )
    result = PostgresWriter(notes, pg_database, "public.notes").send(changes, "r1")
    assert result.accepted == {"a", "d"}
    assert (
        result.failed["b"].startswith("refused by psycopg DataError")
        and "NUL" in result.failed["b"]
    )
    assert result.failed["c"].startswith("SQLSTATE 22001") and "varying(5)" in result.failed["c"]
    assert result.failed["e"].startswith("SQLSTATE 23505 UniqueViolation")
    with psycopg.connect(pg_database) as conn:
        held = dict(conn.execute('select "Id", "Note" from public.notes').fetchall())
    assert held == {"a": "ok", "d": "fine"}


@pytest.mark.postgres
def test_postgres_table_refusing_every_record_is_named_and_not_retried_forever(
    env: dict[str, Path], pg: str
) -> None:
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute('alter table crm.scores add column "Owner__c" text not null')
    serving(env["serving"], rows(10))
    dry = sync(env, spec(PG), "r0", dry_run=True)
    assert dry.status == "failed" and "columns ['Owner__c'] are NOT NULL" in (dry.error or "")
    report = sync(env, spec({**PG, "batch_size": 2}), "r1")
    assert report.status == "partial" and report.failed == 10 and table(pg) == {}
    failed = ledger(env)["failed"]
    assert failed["A000"].startswith("SQLSTATE 23502 NotNullViolation")
    assert "column Owner__c" in failed["A000"]
    # three batches record by record, then whole batches: the table refuses everything
    assert failed["A004"].startswith("SQLSTATE 23502") and "column Owner__c" in failed["A004"]
    assert failed["A006"].startswith("batch not applied: SQLSTATE 23502")
    assert "the 3 batches before were rejected record by record" in failed["A006"]
    assert ledger(env)["accepted"] == set()


@pytest.mark.postgres
def test_postgres_connection_lost_mid_sync_leaves_the_table_as_it_was(
    env: dict[str, Path], pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.delivery.destination_postgres as destination_postgres

    serving(env["serving"], rows(100))
    sync(env, spec(PG), "r1")
    before = table(pg)
    serving(env["serving"], [(k, 0.99, d) for k, _, d in rows(100)])
    real = destination_postgres._Apply.__call__
    calls = {"n": 0}

    def drop_on_second_batch(self: Any, cur: Any, keys: list[str]) -> set[str]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return real(self, cur, keys)

    monkeypatch.setattr(destination_postgres._Apply, "__call__", drop_on_second_batch)
    with pytest.raises(SyncFailed, match="server closed the connection"):
        run_sync(spec(PG), env["serving"], Warehouse(env["wh"]), env["dir"], "r2")
    assert table(pg) == before  # not the first batch either: one transaction
    state = ledger(env)
    assert state["runs"][-1][:2] == ("r2", "failed") and len(state["failed"]) == 100
    assert set(before) == state["accepted"]


@pytest.mark.postgres
def test_postgres_update_only_updates_existing_rows_by_key_and_skips_the_rest(
    env: dict[str, Path], pg: str
) -> None:
    with psycopg.connect(pg) as conn:  # rows the CRM had before any sync
        conn.execute(
            'insert into crm.scores ("AccountId", "Score__c", "Decile__c") '
            "values ('A000', 0.0, 1), ('A002', 0.0, 1)"
        )
    serving(env["serving"], rows(4))
    dry = sync(env, spec(PG, "update_only"), "r0", dry_run=True)
    assert (dry.inserted, dry.updated, dry.skipped) == (0, 2, 2)
    assert [r["operation"] for r in dry.sample] == ["update", "skip", "update", "skip"]
    report = sync(env, spec(PG, "update_only"), "r1")
    assert (report.updated, report.skipped, report.failed) == (2, 2, 0)
    held = table(pg)
    assert held == {"A000": (rows(4)[0][1], 1), "A002": (rows(4)[2][1], 3)}  # none created
    assert ledger(env)["accepted"] == set(held) and ledger(env)["failed"] == {}


@pytest.mark.postgres
def test_full_resync_restores_rows_deleted_or_edited_at_the_destination(
    env: dict[str, Path], pg: str
) -> None:
    data = rows(30)
    serving(env["serving"], data)
    sync(env, spec(PG), "r1")
    with psycopg.connect(pg) as conn:
        conn.execute("delete from crm.scores where \"AccountId\" in ('A001', 'A017')")
        conn.execute('update crm.scores set "Score__c" = 0.5 where "AccountId" = \'A005\'')
    assert sync(env, spec(PG), "r2").sent == 0  # the ledger thinks all is there
    assert len(table(pg)) == 28
    full = sync(env, spec(PG), "r3", full_resync=True)
    assert full.status == "success" and full.full_resync and full.updated == 30
    assert table(pg) == {k: (p, int(d)) for k, p, d in data}
    assert ledger(env)["accepted"] == set(table(pg))


@pytest.mark.postgres
def test_postgres_dry_run_checks_the_table_and_fails_clearly_on_a_wrong_port(
    env: dict[str, Path], pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving(env["serving"], rows(5))
    ok = sync(env, spec(PG), "r1", dry_run=True)
    assert ok.status == "dry_run" and ok.inserted == 5
    assert "crm.scores has the 3 fields" in (ok.check or "")

    monkeypatch.setenv("TEST_DEST_DSN", pg.replace("port=5432", "port=1") + " password=hunter2")
    down = sync(env, spec(PG), "r2", dry_run=True)
    assert down.status == "failed"
    assert "PostgreSQL destination crm.scores (sync crm): cannot connect" in (down.error or "")
    assert "port 1 failed" in (down.error or "") and "hunter2" not in (down.error or "")

    monkeypatch.setenv("TEST_DEST_DSN", pg)
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute('alter table crm.scores alter column "Score__c" type integer')
    wrong = sync(env, spec(PG), "r3", dry_run=True)
    assert wrong.status == "failed" and "Score__c is integer" in (wrong.error or "")
    assert table(pg) == {} and ledger(env)["runs"] == []  # nothing sent, nothing recorded


# --- the command's exit code ------------------------------------------------------------------


def test_expansion_sync_exits_7_when_every_record_was_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api_factory: Any
) -> None:
    from flows.cli import app

    api = api_factory({1: [("status", 422, {}, "no such owner")]})
    home = tmp_path / "home"
    serving_db = home / "serving" / "expansion.duckdb"
    serving_db.parent.mkdir(parents=True)
    serving(serving_db, rows(3))
    syncs = tmp_path / "syncs.yml"
    syncs.write_text(json.dumps({"syncs": [spec(http(api)).model_dump()]}))
    monkeypatch.setenv("EXPANSION_HOME", str(home))
    monkeypatch.setenv("EXPANSION_SYNCS_CONFIG", str(syncs))
    result = CliRunner().invoke(app, ["sync", "--wait", "0"])
    assert result.exit_code == EXIT_PARTIAL, result.output
    assert "crm: sent 0 inserts, 0 updates, 0 deletes; 0 skipped" in result.output
    assert "3 failed" in result.output and "HTTP 422: no such owner" in result.output

    # `expansion run` reaches the same code through the sync stage: a destination it could
    # not use at all raises SyncFailed after publishing, which is 7 as well
    assert exit_code(SyncFailed("sync crm failed")) == EXIT_PARTIAL

    again = CliRunner().invoke(app, ["sync", "--wait", "0"])  # the API takes them now
    assert again.exit_code == 0 and "crm: sent 3 inserts" in again.output
    sent = len(api.requests)
    assert "sent 0 inserts, 0 updates" in CliRunner().invoke(app, ["sync"]).output
    full = CliRunner().invoke(app, ["sync", "crm", "--full-resync", "--wait", "0"])
    assert full.exit_code == 0 and "sent 0 inserts, 3 updates" in full.output
    assert "(full resync)" in full.output and len(api.requests) == sent + 1

    unknown = CliRunner().invoke(app, ["sync", "--full-resync", "nope"])
    assert unknown.exit_code == 2 and "no sync named nope" in unknown.output
