"""Shared by test_faults.py and test_concurrency.py: real `expansion` processes on small
generated extracts, and the invariants a killed or concurrent run must leave intact.

A project is a directory with `landing/` (demo extracts; the last usage months held back in
`held/`, delivered one per run with `deliver`), `state/` (EXPANSION_HOME) and a copy of the
expectation suites without the drift suite: the demo's 120 accounts are too few for a stable
PSI from one month to the next, and drift is not what these suites test. Source freshness is
off for the same reason (and it saves a dbt invocation per run).

These suites run real pipelines (about a minute each here), so they are opt-in:
`make reliability` sets RELIABILITY_SUITE=1; `make test` skips them.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
import yaml

PROJECT_DIR = Path(__file__).resolve().parents[2]
EXPANSION = Path(sys.executable).parent / "expansion"
# Small enough for about a minute per run here, big enough for a first model that passes the
# quality bars in models/params.yaml on the months not held back (not every seed does).
ACCOUNTS, MONTHS, SEED = 120, 14, 3
HELD_MONTHS = ("2026-09", "2026-10")  # delivered one per run by `deliver`
RUN_TIMEOUT = 900

requires_opt_in = pytest.mark.skipif(
    os.environ.get("RELIABILITY_SUITE") != "1",
    reason="real pipeline runs (minutes): `make reliability` runs them (RELIABILITY_SUITE=1)",
)


@contextmanager
def prefect_api() -> Iterator[str]:
    """One Prefect API server for the runs of a module (each `expansion run` would otherwise
    start its own temporary server: ~20 s each here)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


@functools.cache
def _generated(cache: Path) -> Path:
    from demo.generator import generate

    generate(cache / "landing", cache / "oracle", accounts=ACCOUNTS, months=MONTHS, seed=SEED)
    return cache / "landing"


@dataclass
class Project:
    root: Path
    api_url: str | None = None

    @property
    def home(self) -> Path:
        return self.root / "state"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def held(self) -> Path:
        return self.root / "held"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def serving_db(self) -> Path:
        return self.home / "serving" / "expansion.duckdb"

    @property
    def registry(self) -> Path:
        return self.home / "models"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXPANSION_")}
        env.update(
            EXPANSION_HOME=str(self.home),
            EXPANSION_LANDING_DIR=str(self.landing),
            EXPANSION_ORACLE_DIR=str(self.root / "oracle"),
            EXPANSION_EXPECTATIONS_DIR=str(self.root / "expectations"),
            EXPANSION_PARAMS_PATH=str(self.root / "params.yaml"),
            EXPANSION_FRESHNESS="off",
            EXPANSION_DUCKDB_MEMORY_LIMIT="1GB",
            OMP_WAIT_POLICY="PASSIVE",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90",
        )
        if self.api_url:
            env["PREFECT_API_URL"] = self.api_url
        env.update(extra)
        return env

    def copy(self, root: Path) -> Project:
        shutil.copytree(self.root, root, symlinks=True)
        return Project(root, self.api_url)


def new_project(
    tmp_path_factory: pytest.TempPathFactory, name: str, api_url: str | None
) -> Project:
    """Generated extracts (made once per session) with the last usage months held back."""
    landing = _generated(tmp_path_factory.getbasetemp() / "reliability-extracts")
    project = Project(tmp_path_factory.mktemp(name), api_url)
    shutil.copytree(landing, project.landing)
    project.held.mkdir()
    for month in HELD_MONTHS:
        name_ = f"usage_daily_{month}.parquet"
        (project.landing / "usage" / "usage_daily" / name_).rename(project.held / name_)
    # No model quality bar: 120 accounts leave one backtest cut-off with ~7 positives, where
    # ROC AUC is noise (0.44-0.63 across LightGBM settings). These suites prove recovery;
    # a run stopped by the bar would never reach the later crash points.
    params = yaml.safe_load((PROJECT_DIR / "models" / "params.yaml").read_text())
    params["quality"].update(min_roc_auc=0.0, max_brier=1.0)
    (project.root / "params.yaml").write_text(yaml.safe_dump(params))
    suites = project.root / "expectations"
    suites.mkdir()
    for path in (PROJECT_DIR / "expectations").glob("*.json"):
        if json.loads(path.read_text()).get("meta", {}).get("edge") != "drift":
            shutil.copy(path, suites / path.name)
    return project


def deliver(project: Project, month: str) -> Path:
    """A new usage extract arrives in the landing zone."""
    name = f"usage_daily_{month}.parquet"
    target = project.landing / "usage" / "usage_daily" / name
    (project.held / name).rename(target)
    return target


@dataclass
class Result:
    returncode: int
    seconds: float
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def start(project: Project, *args: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """An `expansion` command as its own process group (output to `log`)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(EXPANSION), *args],
            env=project.env(**env),
            cwd=project.root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def finish(proc: subprocess.Popen[bytes], started: float, log: Path) -> Result:
    try:
        proc.wait(timeout=RUN_TIMEOUT)
    finally:
        # Whatever the command started (a temporary Prefect server) dies with it: a killed
        # process cannot stop its children itself.
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            proc.wait()
    return Result(proc.returncode, round(time.monotonic() - started, 1), log)


def run(project: Project, *args: str, crash_at: str | None = None, label: str = "run") -> Result:
    """`expansion <args>` to the end (or to its crash point) in a subprocess."""
    logs = project.root / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"{len(list(logs.iterdir())):02d}-{label}.log"
    extra = {"EXPANSION_CRASH_AT": crash_at} if crash_at else {}
    started = time.monotonic()
    return finish(start(project, *args, log=log, **extra), started, log)


# --- what is on disk -------------------------------------------------------------------------


def sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _read(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _has_table(db: Path, relation: str) -> bool:
    schema, name = relation.split(".")
    return bool(
        _read(
            db,
            "select 1 from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, name],
        )
    )


def champion(project: Project) -> str | None:
    from flows.registry import champion_version

    return champion_version(project.registry)


def model_versions(project: Project) -> list[str]:
    root = project.registry / "models"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def publication(project: Project) -> dict[str, Any] | None:
    if not project.serving_db.is_file():
        return None
    con = duckdb.connect(str(project.serving_db), read_only=True)
    try:
        frame = con.execute("select * from _publication").df()
    finally:
        con.close()
    return {str(k): v for k, v in frame.iloc[0].to_dict().items()}


def parquet_current(project: Project) -> str | None:
    link = project.home / "serving" / "parquet" / "current"
    return os.readlink(link) if link.is_symlink() else None


def run_records(project: Project) -> dict[str, dict[str, Any]]:
    runs = project.home / "runs"
    records = [json.loads(p.read_text()) for p in runs.glob("*.json")] if runs.is_dir() else []
    return {r["run_id"]: r for r in records}


def latest_run_id(project: Project) -> str:
    """The run id of the newest run record (a run writes one as it starts)."""
    runs = sorted((project.home / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return str(json.loads(runs[-1].read_text())["run_id"])


def raw_counts(project: Project) -> dict[str, int]:
    """Rows per raw table that has any."""
    from flows.ingest.contract import TABLES

    if not project.warehouse.is_file() or not _has_table(project.warehouse, "raw._load_ledger"):
        return {}
    con = duckdb.connect(str(project.warehouse), read_only=True)
    try:
        out = {}
        for t in TABLES:
            row = con.execute(f"select count(*) from raw.{t.raw_relation}").fetchone()
            if row and row[0]:
                out[t.raw_relation] = int(row[0])
        return out
    finally:
        con.close()


def ledger_files(project: Project) -> list[str]:
    """Names of the files in the load ledger (one entry per load)."""
    if not project.warehouse.is_file() or not _has_table(project.warehouse, "raw._load_ledger"):
        return []
    rows = _read(project.warehouse, "select file_path from raw._load_ledger order by 1")
    return [Path(r[0]).name for r in rows]


def check_raw(project: Project) -> None:
    """Raw history: no duplicate keys, no file loaded twice, and exactly the rows the ledger
    says for every file (nothing half-loaded, nothing loaded without its ledger row)."""
    from flows.ingest.contract import TABLES

    if not project.warehouse.is_file() or not _has_table(project.warehouse, "raw._load_ledger"):
        return
    con = duckdb.connect(str(project.warehouse), read_only=True)
    try:
        twice = con.execute(
            "select sha256, count(*) from raw._load_ledger group by 1 having count(*) > 1"
        ).fetchall()
        assert twice == [], f"files loaded twice: {twice}"
        for t in TABLES:
            key = ", ".join(f'"{c}"' for c in t.primary_key)
            dupes = con.execute(
                f"select {key}, count(*) from raw.{t.raw_relation} group by all "
                "having count(*) > 1 limit 3"
            ).fetchall()
            assert dupes == [], f"duplicate keys in raw.{t.raw_relation}: {dupes}"
            in_raw = dict(
                con.execute(
                    f"select _source_file, count(*) from raw.{t.raw_relation} group by 1"
                ).fetchall()
            )
            in_ledger = dict(
                con.execute(
                    "select file_path, sum(row_count) from raw._load_ledger "
                    "where table_name = ? and row_count > 0 group by 1",
                    [f"{t.source}.{t.name}"],
                ).fetchall()
            )
            assert {k: int(v) for k, v in in_raw.items()} == {
                k: int(v) for k, v in in_ledger.items()
            }, f"raw.{t.raw_relation} and the load ledger disagree"
    finally:
        con.close()


def check_serving(project: Project) -> None:
    """The serving file, when there is one, is a whole version: its scores are its history."""
    pub = publication(project)
    if pub is None:
        return
    rows = _read(
        project.serving_db,
        "select (select count(*) from account_scores), "
        "(select count(*) from account_score_history where run_id = ?)",
        [pub["run_id"]],
    )
    scores, history = rows[0]
    assert scores > 0 and scores == history, f"serving file is half a version: {rows}"


# --- reverse-ETL destinations and their ledger -------------------------------------------------


def _specs() -> list[Any]:
    from flows.delivery.sync_config import load_syncs

    return load_syncs(PROJECT_DIR / "config" / "syncs.yml")


def sync_ledger(project: Project) -> dict[str, dict[str, str]]:
    """sync name -> record key -> hash the destination last accepted, per the ledger."""
    out: dict[str, dict[str, str]] = {s.name: {} for s in _specs()}
    if not project.warehouse.is_file() or not _has_table(project.warehouse, "sync.record_state"):
        return out
    for name, key, hash_ in _read(
        project.warehouse, "select sync_name, record_key, record_hash from sync.record_state"
    ):
        assert key not in out[name], f"sync {name}: key {key} twice in the ledger"
        out[name][key] = hash_
    return out


def destination(project: Project, spec: Any) -> dict[str, dict[str, str]]:
    """What a CRM holds after importing every bulk file of a CSV sync in order (upsert by key,
    later files win): key -> field -> value as written."""
    folder = project.home / "sync" / spec.destination.path
    files = sorted(folder.glob(f"{spec.name}_*.csv"), key=lambda p: (p.stat().st_mtime, p.name))
    held: dict[str, dict[str, str]] = {}
    for path in files:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for row in frame.to_dict("records"):
            key = row[spec.key_field]
            if row["Operation"] == "delete":
                held.pop(key, None)
            else:
                held[key] = {k: v for k, v in row.items() if k != "Operation"}
    return held


def pending_changes(project: Project) -> dict[str, int]:
    """Per sync, the records the next sync would send (the ledger vs the serving file)."""
    from flows.delivery.sync import run_sync
    from flows.warehouse import Warehouse

    out = {}
    for spec in _specs():
        report = run_sync(
            spec,
            project.serving_db,
            Warehouse(project.warehouse),
            project.home / "sync",
            "consistency-check",
            dry_run=True,
        )
        out[spec.name] = report.sent
    return out


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(x) and math.isnan(y))


def _serving_as_csv(project: Project, spec: Any) -> dict[str, dict[str, str]]:
    mapped = ", ".join(f'"{src}" as "{dest}"' for dest, src in spec.fields.items())
    con = duckdb.connect(str(project.serving_db), read_only=True)
    try:
        frame = con.execute(f"select {mapped} from {spec.source}").df()
    finally:
        con.close()
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    buffer.seek(0)
    rows = pd.read_csv(buffer, dtype=str, keep_default_na=False).to_dict("records")
    return {r[spec.key_field]: r for r in rows}


def check_sync(project: Project, *, settled: bool) -> None:
    """Every record the ledger says a destination accepted is at the destination (the ledger
    never claims more than the destination holds). `settled` (after a run that completed):
    the destination holds exactly what the ledger says, and that is the serving file's
    current values, so the next sync has nothing to send."""
    ledger = sync_ledger(project)
    for spec in _specs():
        held = destination(project, spec)
        missing = sorted(set(ledger[spec.name]) - set(held))
        assert missing == [], f"sync {spec.name}: in the ledger, never sent: {missing[:5]}"
        if not settled:
            continue
        assert set(held) == set(ledger[spec.name]), f"sync {spec.name}: sent, not in the ledger"
        current = _serving_as_csv(project, spec)
        for key, fields in current.items():
            assert key in held, f"sync {spec.name}: {key} never reached the destination"
            wrong = {
                f: (v, held[key].get(f))
                for f, v in fields.items()
                if not _same(v, held[key].get(f, ""))
            }
            assert not wrong, f"sync {spec.name}: {key} differs at the destination: {wrong}"
    if settled:
        assert pending_changes(project) == {s.name: 0 for s in _specs()}


def leftovers(project: Project) -> list[str]:
    """Temp files and directories of interrupted writes."""
    home = project.home
    patterns = [
        "serving/.expansion.duckdb.*",
        "serving/parquet/.current.*",
        "models/models/.v*",
        "models/.champion.json.*",
        "sync/*/.*.tmp",
        "runs/*.tmp",
        "reports/**/.*.tmp",
        "quality/**/.*.tmp",
    ]
    return sorted(str(p.relative_to(home)) for pat in patterns for p in home.glob(pat))
