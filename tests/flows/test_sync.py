"""Reverse-ETL: diffing against the ledger, and every destination for real."""

from __future__ import annotations

import csv
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from flows.delivery.sync import run_sync
from flows.delivery.sync_config import SyncSpec, load_syncs
from flows.warehouse import Warehouse


def serving(path: Path, rows: list[tuple[str, float]]) -> Path:
    con = duckdb.connect(str(path))
    con.execute("create or replace table account_scores (account_id varchar, p_expansion double)")
    con.executemany("insert into account_scores values (?, ?)", rows)
    con.close()
    return path


def spec(destination: dict[str, Any], mode: str = "upsert") -> SyncSpec:
    return SyncSpec.model_validate(
        {
            "name": "crm",
            "source": "account_scores",
            "key": "account_id",
            "mode": mode,
            "destination": destination,
            "fields": {"AccountId": "account_id", "Score__c": "p_expansion"},
        }
    )


CSV = {"type": "csv", "path": "out"}


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, Path]:
    return {
        "serving": tmp_path / "s.duckdb",
        "wh": tmp_path / "wh.duckdb",
        "dir": tmp_path / "sync",
    }


def sync(env: dict[str, Path], s: SyncSpec, run_id: str, **kw: Any) -> Any:
    return run_sync(s, env["serving"], Warehouse(env["wh"]), env["dir"], run_id, **kw)


def ledger(env: dict[str, Path], sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(env["wh"]), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_csv_sends_only_what_changed(env: dict[str, Path]) -> None:
    serving(env["serving"], [("A", 0.1), ("B", 0.2), ("C", 0.3)])
    first = sync(env, spec(CSV), "r1")
    assert (first.inserted, first.updated, first.deleted, first.status) == (3, 0, 0, "success")
    assert [r["AccountId"] for r in read_csv(first.files[0])] == ["A", "B", "C"]
    assert sync(env, spec(CSV), "r2").sent == 0
    serving(env["serving"], [("A", 0.1), ("B", 0.25), ("D", 0.4)])
    third = sync(env, spec(CSV), "r3")
    assert (third.inserted, third.updated, third.deleted, third.unchanged) == (1, 1, 0, 1)
    assert {(r["Operation"], r["AccountId"]) for r in read_csv(third.files[0])} == {
        ("update", "B"),
        ("insert", "D"),
    }
    runs = ledger(
        env, "select run_id, status, inserted, updated from sync.runs order by started_at"
    )
    assert runs == [("r1", "success", 3, 0), ("r2", "success", 0, 0), ("r3", "success", 1, 1)]


def test_mirror_deletes_and_dry_run_sends_nothing(env: dict[str, Path]) -> None:
    serving(env["serving"], [("A", 0.1), ("B", 0.2)])
    sync(env, spec(CSV, "mirror"), "r1")
    serving(env["serving"], [("A", 0.1)])
    dry = sync(env, spec(CSV, "mirror"), "r2", dry_run=True)
    assert (dry.deleted, dry.files, dry.status) == (1, [], "dry_run")
    real = sync(env, spec(CSV, "mirror"), "r3")
    assert read_csv(real.files[0]) == [{"Operation": "delete", "AccountId": "B", "Score__c": ""}]
    assert sync(env, spec(CSV, "mirror"), "r4").sent == 0


def test_update_only_sends_updates_only_and_full_resync_sends_everything(
    env: dict[str, Path],
) -> None:
    serving(env["serving"], [("A", 0.1), ("B", 0.2)])
    first = sync(env, spec(CSV, "update_only"), "r1")  # the CRM's import matches by key
    assert {r["Operation"] for r in read_csv(first.files[0])} == {"update"}
    assert (first.updated, first.inserted) == (2, 0)
    assert sync(env, spec(CSV, "update_only"), "r2").sent == 0
    full = sync(env, spec(CSV, "update_only"), "r3", full_resync=True)
    assert [r["AccountId"] for r in read_csv(full.files[0])] == ["A", "B"]
    runs = ledger(env, "select run_id, updated, skipped, full_resync from sync.runs order by 1")
    assert runs == [("r1", 2, 0, False), ("r2", 0, 0, False), ("r3", 2, 0, True)]


def test_config_rejects_unsafe_identifiers(tmp_path: Path) -> None:
    cfg = tmp_path / "syncs.yml"
    cfg.write_text(
        "syncs:\n  - name: x\n    source: account_scores\n    key: account_id\n"
        "    destination: {type: csv}\n    fields: {Id: 'account_id; drop table x'}\n"
    )
    with pytest.raises(ValueError, match="not a valid identifier"):
        load_syncs(cfg)
    cfg.write_text(
        "syncs:\n  - name: x\n    source: account_scores\n    key: account_id\n"
        "    destination: {type: postgres, dsn_env: X, table: 'crm.t; drop table y'}\n"
        "    fields: {Id: account_id}\n"
    )
    with pytest.raises(ValueError, match="not a valid identifier"):
        load_syncs(cfg)


def test_shipped_config_loads() -> None:
    specs = load_syncs(Path(__file__).parents[2] / "config" / "syncs.yml")
    assert specs and specs[0].source == "account_scores"


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def pg(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TEST_SYNC_DSN", pg_database)
    return pg_database


PG = {"type": "postgres", "dsn_env": "TEST_SYNC_DSN", "table": "crm.expansion_scores"}


def pg_rows(dsn: str) -> dict[str, float]:
    with psycopg.connect(dsn) as conn:
        return dict(
            conn.execute('select "AccountId", "Score__c" from crm.expansion_scores').fetchall()
        )


@pytest.mark.postgres
def test_postgres_inserts_updates_exactly_what_changed_and_mirrors_deletes(
    env: dict[str, Path], pg: str
) -> None:
    rows = [(f"A{i:02d}", i / 100) for i in range(40)]
    serving(env["serving"], rows)
    first = sync(env, spec(PG, "mirror"), "r1")
    assert first.inserted == 40 and pg_rows(pg) == dict(rows)
    assert sync(env, spec(PG, "mirror"), "r2").sent == 0

    changed = [(k, v + 0.5) if i < 10 else (k, v) for i, (k, v) in enumerate(rows)]
    serving(env["serving"], changed)
    with psycopg.connect(pg) as conn:
        before = conn.execute(
            "select xmin::text::bigint from crm.expansion_scores order by 1"
        ).fetchall()
    third = sync(env, spec(PG, "mirror"), "r3")
    assert (third.inserted, third.updated, third.deleted) == (0, 10, 0)
    assert pg_rows(pg) == dict(changed)
    with psycopg.connect(pg) as conn:
        touched = conn.execute(
            "select count(*) from crm.expansion_scores where _sync_run_id = 'r3'"
        ).fetchone()[0]
    assert touched == 10 and len(before) == 40

    serving(env["serving"], changed[5:])
    fourth = sync(env, spec(PG, "mirror"), "r4")
    assert fourth.deleted == 5 and set(pg_rows(pg)) == {k for k, _ in changed[5:]}


@pytest.mark.postgres
def test_postgres_crash_mid_sync_leaves_all_or_nothing_and_next_run_completes(
    env: dict[str, Path], pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.delivery.destination_postgres as destinations

    serving(env["serving"], [(f"A{i}", 0.1) for i in range(20)])
    sync(env, spec(PG), "r1")
    serving(env["serving"], [(f"A{i}", 0.9) for i in range(20)])

    real_value = destinations._pg_text
    sent = {"n": 0}

    def crash_after_some(value: Any) -> Any:
        sent["n"] += 1
        if sent["n"] > 15:  # the process dies while the records are staged
            raise KeyboardInterrupt("killed mid-sync")
        return real_value(value)

    monkeypatch.setattr(destinations, "_pg_text", crash_after_some)
    with pytest.raises(KeyboardInterrupt):
        sync(env, spec(PG), "r2")
    assert set(pg_rows(pg).values()) == {0.1}  # none of the run's changes landed
    monkeypatch.setattr(destinations, "_pg_text", real_value)
    done = sync(env, spec(PG), "r3")
    assert done.updated == 20 and set(pg_rows(pg).values()) == {0.9}


# --- HTTP -------------------------------------------------------------------------------------


class FakeCrm:
    """A CRM batch API on 127.0.0.1: applies each idempotency key once, rejects some records,
    and fails some requests with 503 before succeeding."""

    def __init__(self, reject: set[str], flaky_batches: int) -> None:
        self.reject, self.flaky = reject, flaky_batches
        self.applied: dict[str, int] = {}
        self.keys_seen: dict[str, dict[str, Any]] = {}
        self.requests = 0
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                crm.requests += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                if crm.flaky > 0:
                    crm.flaky -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                if key not in crm.keys_seen:  # apply once per idempotency key
                    results = []
                    for r in body["records"]:
                        if r["key"] in crm.reject:
                            results.append(
                                {"key": r["key"], "status": "error", "error": "owner inactive"}
                            )
                        else:
                            crm.applied[r["key"]] = crm.applied.get(r["key"], 0) + 1
                            results.append({"key": r["key"], "status": "ok"})
                    crm.keys_seen[key] = {"results": results}
                out = json.dumps(crm.keys_seen[key]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/batch"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_http_retries_transient_failures_and_resends_rejected_records_next_run(
    env: dict[str, Path],
) -> None:
    crm = FakeCrm(reject={"A3", "A7"}, flaky_batches=2)
    try:
        destination = {"type": "http", "url": crm.url, "batch_size": 4, "backoff_seconds": 0.01}
        serving(env["serving"], [(f"A{i}", 0.1) for i in range(10)])
        first = sync(env, spec(destination), "r1")
        assert first.status == "partial" and first.failed == 2 and first.inserted == 8
        assert {f["key"]: f["reason"] for f in first.failures} == {
            "A3": "owner inactive",
            "A7": "owner inactive",
        }
        failed = ledger(env, "select record_key, reason from sync.failed_records order by 1")
        assert failed == [("A3", "owner inactive"), ("A7", "owner inactive")]
        assert crm.requests == 3 + 2  # three batches, two 503s retried

        crm.reject = {"A7"}
        second = sync(env, spec(destination), "r2")  # only the two failed records go again
        assert (second.inserted, second.failed, second.status) == (1, 1, "partial")
        assert max(crm.applied.values()) == 1  # no record applied twice
        assert sorted(crm.applied) == [f"A{i}" for i in range(10) if i != 7]
    finally:
        crm.server.shutdown()


def test_http_unreachable_marks_everything_failed_and_keeps_it_for_next_run(
    env: dict[str, Path],
) -> None:
    destination = {
        "type": "http",
        "url": "http://127.0.0.1:1/batch",
        "max_attempts": 2,
        "backoff_seconds": 0.01,
    }
    serving(env["serving"], [("A", 0.1), ("B", 0.2)])
    report = sync(env, spec(destination), "r1")
    assert report.failed == 2 and report.status == "partial" and report.sent == 0
    assert ledger(env, "select count(*) from sync.record_state") == [(0,)]
