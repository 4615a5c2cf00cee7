"""Security: identifiers from configuration, secrets, least privilege, personal data, file modes.

The unit tests try SQL injection through every identifier a configuration file or setting
carries. The end-to-end test runs the pipeline once (a real `expansion run` process) with a
PostgreSQL sync destination whose password comes from a secrets file and whose role may only
write its table, then greps everything the run left behind for the password, the personal data
of contacts, and world-writable files.
"""

from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
import yaml

from flows.errors import SecretError
from flows.secrets import SECRETS_DIR_ENV, read_secret
from tests.conftest import PG_SERVER, fresh_postgres_database

ROOT = Path(__file__).resolve().parents[2]
INJECTION = "x; drop table raw.crm__accounts; --"


# --- identifiers from configuration ------------------------------------------------------------


def _sync_config(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "crm",
        "source": "account_scores",
        "key": "account_id",
        "destination": {"type": "postgres", "dsn_env": "CRM_DSN", "table": "crm.scores"},
        "fields": {"AccountId": "account_id", "Score__c": "p_expansion"},
    }
    for dotted, value in changes.items():
        target = spec
        *path, last = dotted.split("__")
        for part in path:
            target = target[part]
        target[last] = value
    return {"syncs": [spec]}


SYNC_INJECTIONS = {
    "sync name": {"name": INJECTION},
    "serving table": {"source": f"account_scores; {INJECTION}"},
    "key column": {"key": INJECTION},
    "destination field": {"fields": {INJECTION: "account_id"}},
    "source column": {"fields": {"AccountId": INJECTION}},
    "postgres table": {"destination__table": f"crm.scores; {INJECTION}"},
    "postgres schema": {"destination__table": f'crm"; {INJECTION}.scores'},
    "dsn env name": {"destination__dsn_env": "$(cat /etc/passwd)"},
    "csv path traversal": {"destination": {"type": "csv", "path": "../../../etc"}},
    "csv absolute path": {"destination": {"type": "csv", "path": "/etc/cron.d"}},
    "http header env": {
        "destination": {
            "type": "http",
            "url": "http://127.0.0.1:1/x",
            "headers_env": {"Authorization": "A; rm -rf /"},
        }
    },
}


@pytest.mark.parametrize("where", list(SYNC_INJECTIONS))
def test_sync_config_rejects_injection(where: str, tmp_path: Path) -> None:
    from flows.delivery.sync_config import load_syncs

    path = tmp_path / "syncs.yml"
    path.write_text(yaml.safe_dump(_sync_config(**SYNC_INJECTIONS[where])))
    with pytest.raises(ValueError) as caught:
        load_syncs(path)
    assert (
        "valid identifier" in str(caught.value)
        or "must" in str(caught.value)
        or ("not an environment variable name" in str(caught.value))
    )


@pytest.mark.parametrize(
    "table_spec",
    [
        {"table": f"billing.customers; {INJECTION}"},
        {"table": 'billing."customers"'},
        {"table": "billing.customers", "watermark": f"updated_at; {INJECTION}"},
        {"query": f"delete from billing.customers; {INJECTION}"},
    ],
    ids=["table", "quoted table", "watermark", "query that is not a select"],
)
def test_source_config_rejects_injection(table_spec: dict[str, str], tmp_path: Path) -> None:
    from flows.ingest.sources import load_sources_config

    path = tmp_path / "sources.yml"
    config = {
        "sources": {
            "billing": {
                "type": "postgres",
                "dsn_env": "BILLING_DSN",
                "tables": {"customers": table_spec},
            }
        }
    }
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"must|table|watermark|query"):
        load_sources_config(path, tmp_path)


@pytest.mark.parametrize(
    "change",
    [
        {"meta": {"table": f"marts.accounts; {INJECTION}"}},
        {"column": f'account_id" from marts.accounts; {INJECTION} --'},
        {"meta": {"table": "marts.accounts", "computed_columns": {INJECTION: "1"}}},
    ],
    ids=["table", "expectation column", "computed column name"],
)
def test_expectation_suites_reject_injection(change: dict[str, Any], tmp_path: Path) -> None:
    from flows.quality.suites import load_suite

    suite: dict[str, Any] = {
        "name": "x",
        "meta": {"table": "marts.accounts", "edge": "marts"},
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "account_id"}}
        ],
    }
    if "column" in change:
        suite["expectations"][0]["kwargs"]["column"] = change["column"]
    else:
        suite["meta"] = {**suite["meta"], **change["meta"]}
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite))
    with pytest.raises(ValueError, match=r"identifier|schema\.table"):
        load_suite(path)


@pytest.mark.parametrize(
    "setting", [{"duckdb_memory_limit": "1GB'; drop table x; --"}, {"target": "local; rm -rf /"}]
)
def test_settings_reject_values_pasted_into_sql_or_commands(setting: dict[str, str]) -> None:
    from pydantic import ValidationError

    from flows.settings import Settings

    with pytest.raises(ValidationError):
        Settings(**setting)  # type: ignore[arg-type]


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_come_from_the_environment_or_a_private_file_outside_the_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "CRM_DSN").write_text("postgresql://u:from-file@h/db\n")
    (folder / "CRM_DSN").chmod(0o600)
    monkeypatch.setenv(SECRETS_DIR_ENV, str(folder))
    assert read_secret("CRM_DSN") == "postgresql://u:from-file@h/db"
    monkeypatch.setenv("CRM_DSN", "from-env")
    assert read_secret("CRM_DSN") == "from-env"  # the environment wins
    monkeypatch.delenv("CRM_DSN")
    assert read_secret("OTHER") is None

    (folder / "CRM_DSN").chmod(0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        read_secret("CRM_DSN")
    monkeypatch.setenv(SECRETS_DIR_ENV, str(ROOT / "config"))
    with pytest.raises(SecretError, match="inside the project directory"):
        read_secret("CRM_DSN")


# --- the pipeline, end to end --------------------------------------------------------------------

PASSWORD = f"Pw-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def crm_database() -> Iterator[tuple[str, str]]:
    """A database with the CRM's score table and a role that may only read and write it."""
    role = f"crm_writer_{uuid.uuid4().hex[:8]}"
    with fresh_postgres_database() as (admin, name):
        admin.execute(f"create role {role} login password '{PASSWORD}'")
        try:
            with psycopg.connect(f"{PG_SERVER} dbname={name}", autocommit=True) as db:
                db.execute("revoke create on schema public from public")
                db.execute(f'revoke create on database "{name}" from public')
                db.execute("create schema crm")
                db.execute(
                    'create table crm.account_scores ("AccountId" text primary key, '
                    '"Expansion_Propensity__c" double precision, "Next_Best_Offer__c" text, '
                    '"Expansion_Reason_1__c" text, _sync_hash text, _synced_at timestamptz, '
                    "_sync_run_id text)"
                )
                db.execute(f"grant usage on schema crm to {role}")
                db.execute(f"grant select, insert, update, delete on crm.account_scores to {role}")
            yield name, f"postgresql://{role}:{PASSWORD}@127.0.0.1:5432/{name}"
        finally:  # the role goes once the database holding its grants is gone
            admin.execute(f'drop database "{name}" with (force)')
            admin.execute(f"drop role {role}")


@pytest.fixture(scope="module")
def secured_run(
    tmp_path_factory: pytest.TempPathFactory, crm_database: tuple[str, str]
) -> dict[str, Any]:
    """One `expansion run` with the CRM DSN in a secrets file and a PostgreSQL sync."""
    from demo.generator import generate

    root = tmp_path_factory.mktemp("secured")
    generate(root / "landing", root / "oracle", accounts=150, months=14, seed=5)
    secrets = tmp_path_factory.mktemp("secrets")
    (secrets / "CRM_DSN").write_text(crm_database[1])
    (secrets / "CRM_DSN").chmod(0o600)
    syncs = yaml.safe_load((ROOT / "config" / "syncs.yml").read_text())
    syncs["syncs"].append(
        {
            "name": "crm_scores_table",
            "source": "account_scores",
            "key": "account_id",
            "destination": {
                "type": "postgres",
                "dsn_env": "CRM_DSN",
                "table": "crm.account_scores",
            },
            "fields": {
                "AccountId": "account_id",
                "Expansion_Propensity__c": "p_expansion",
                "Next_Best_Offer__c": "next_best_offer",
                "Expansion_Reason_1__c": "reason_1",
            },
        }
    )
    (root / "syncs.yml").write_text(yaml.safe_dump(syncs))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
    env.update(
        {
            "EXPANSION_HOME": str(root / "state"),
            "EXPANSION_LANDING_DIR": str(root / "landing"),
            "EXPANSION_ORACLE_DIR": str(root / "oracle"),
            "EXPANSION_SYNCS_CONFIG": str(root / "syncs.yml"),
            "EXPANSION_SECRETS_DIR": str(secrets),
            "EXPANSION_DUCKDB_MEMORY_LIMIT": "2GB",
            "EXPANSION_LOG_LEVEL": "DEBUG",  # the most talkative logs must not leak either
            "PREFECT_HOME": str(root / "prefect"),
        }
    )
    done = subprocess.run(
        [str(Path(sys.executable).parent / "expansion"), "run"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"root": root, "output": done.stdout + done.stderr, "dsn": crm_database[1]}


def _files(root: Path) -> Iterator[Path]:
    yield from (p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.mark.e2e
@pytest.mark.postgres
def test_a_role_that_can_only_write_its_table_receives_the_scores(
    secured_run: dict[str, Any], crm_database: tuple[str, str]
) -> None:
    with psycopg.connect(f"{PG_SERVER} dbname={crm_database[0]}") as db:
        rows = db.execute("select count(*), count(_sync_run_id) from crm.account_scores").fetchone()
    serving = duckdb.connect(
        str(secured_run["root"] / "state" / "serving" / "expansion.duckdb"), read_only=True
    )
    scored = serving.execute("select count(*) from account_scores").fetchone()
    serving.close()
    assert rows is not None and scored is not None
    assert rows[0] == scored[0] > 0 and rows[1] == rows[0]


@pytest.mark.e2e
@pytest.mark.postgres
def test_the_password_is_in_no_log_or_file_of_the_run(secured_run: dict[str, Any]) -> None:
    assert PASSWORD not in secured_run["output"]
    leaks = [
        p for p in _files(secured_run["root"] / "state") if PASSWORD.encode() in p.read_bytes()
    ]
    assert leaks == []
    # the Prefect API's own database (logs, parameters, artifacts) included
    assert any((secured_run["root"] / "prefect").rglob("*.db"))
    for db in (secured_run["root"] / "prefect").rglob("*.db*"):
        assert PASSWORD.encode() not in db.read_bytes()


def _contacts(landing: Path) -> tuple[set[str], set[str]]:
    emails, names = set(), set()
    for path in (landing / "crm" / "contacts").glob("*.csv"):
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if row["email"]:
                    emails.add(row["email"].lower())
                if row["first_name"] and row["last_name"]:
                    names.add(f"{row['first_name']} {row['last_name']}".lower())
    return emails, names


@pytest.mark.e2e
@pytest.mark.postgres
def test_contact_personal_data_is_in_no_published_table_sync_or_report(
    secured_run: dict[str, Any], crm_database: tuple[str, str]
) -> None:
    emails, names = _contacts(secured_run["root"] / "landing")
    assert len(emails) > 50 and len(names) > 50
    state = secured_run["root"] / "state"

    def check(text: str, where: str) -> None:
        low = text.lower()
        found = [e for e in emails if e in low] + [n for n in names if n in low]
        assert not found, f"{where} holds personal data of contacts: {found[:5]}"

    serving = duckdb.connect(str(state / "serving" / "expansion.duckdb"), read_only=True)
    tables = [t for (t,) in serving.execute("select table_name from duckdb_tables()").fetchall()]
    for table in tables:
        check(serving.execute(f'select * from "{table}"').df().to_csv(), f"serving {table}")
    serving.close()
    for folder in ("sync", "reports"):
        for path in _files(state / folder):
            if path.suffix in {".csv", ".html", ".json"}:
                check(path.read_text(errors="replace"), str(path))
    for path in (state / "serving" / "parquet" / "current").glob("*.parquet"):
        check(duckdb.sql(f"select * from '{path}'").df().to_csv(), str(path))
    with psycopg.connect(f"{PG_SERVER} dbname={crm_database[0]}") as db:
        check(str(db.execute("select * from crm.account_scores").fetchall()), "CRM table")
    # and staging hashes what it keeps of contacts: no e-mail survives in the warehouse marts
    warehouse = duckdb.connect(str(state / "warehouse.duckdb"), read_only=True)
    for schema, table in warehouse.execute(
        "select schema_name, table_name from duckdb_tables() union all "
        "select schema_name, view_name from duckdb_views() where not internal"
    ).fetchall():
        if schema in {"raw", "sync"}:  # raw keeps extracts as delivered (private warehouse)
            continue
        check(warehouse.execute(f'select * from "{schema}"."{table}"').df().to_csv(), table)
    warehouse.close()


@pytest.mark.e2e
@pytest.mark.postgres
def test_no_file_or_folder_the_run_created_is_world_writable(secured_run: dict[str, Any]) -> None:
    writable = [
        str(p)
        for p in [secured_run["root"] / "state", *(secured_run["root"] / "state").rglob("*")]
        if not p.is_symlink() and p.stat().st_mode & stat.S_IWOTH
    ]
    assert writable == []


# --- private state: owner-only (0700 / 0600), serving readable by design -------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_state_is_created_owner_only_and_serving_stays_readable(tmp_path: Path) -> None:
    from flows.files import private_umask, write_atomic
    from flows.run.lock import pipeline_lock
    from flows.run.private import secure_state
    from flows.run.records import write_run_record
    from flows.settings import Settings
    from flows.warehouse import Warehouse

    settings = Settings(home=tmp_path / "state")
    with private_umask():  # what `expansion` sets for its whole process (prefect_env.configure)
        with pipeline_lock(settings):
            assert _mode(settings.home) == 0o711  # serving will lie inside: passable, not listable
        with Warehouse(settings.warehouse).connect() as con:
            con.execute("create table contacts as select 'ann@example.com' as email")
        serving = settings.serving
        serving.mkdir()
        duckdb.connect(str(serving / "expansion.duckdb")).close()
        secure_state(settings)  # what a run does at its start, and serving gets readable
    record = write_run_record(settings, {"run_id": "r1", "status": "running"})  # any umask
    report = write_atomic(settings.home / "reports" / "deep" / "model.html", "<html/>")

    home = settings.home
    assert _mode(home) == 0o711  # serving lies inside: others pass through, cannot list
    for private in (home / "pipeline.lock", settings.warehouse, record, report):
        assert _mode(private) == 0o600, private
    for folder in (settings.runs_dir, home / "reports", home / "reports" / "deep"):
        assert _mode(folder) == 0o700, folder
    assert _mode(serving) == 0o755 and _mode(serving / "expansion.duckdb") == 0o644


def test_state_left_open_is_closed_at_the_next_run_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.run.recovery import recover
    from flows.settings import Settings

    home = tmp_path / "state"
    settings = Settings(home=home, serving_dir=tmp_path / "bi")
    for folder in (home / "runs", home / "models" / "v0001", home / "prefect", tmp_path / "bi"):
        folder.mkdir(parents=True, mode=0o755)
        folder.chmod(0o755)
    opened = [home / "warehouse.duckdb", home / "runs" / "r0.json", home / "prefect" / "prefect.db"]
    for path in opened:
        path.write_text("{}")
        path.chmod(0o644)
    (tmp_path / "bi" / "expansion.duckdb").write_text("")
    (tmp_path / "bi" / "expansion.duckdb").chmod(0o600)
    (home / "prefect" / "prefect.db").chmod(0o666)
    monkeypatch.setenv("PREFECT_HOME", str(home / "prefect"))
    done = recover(settings)
    assert all(_mode(p) == 0o600 for p in opened)
    assert _mode(home) == 0o700  # serving lies elsewhere: nothing to pass through to
    assert _mode(home / "models" / "v0001") == 0o700
    assert _mode(tmp_path / "bi") == 0o755 and _mode(tmp_path / "bi" / "expansion.duckdb") == 0o644
    said = " ".join(done) + caplog.text
    assert str(home / "warehouse.duckdb") in said and "owner-only" in caplog.text
    assert recover(settings) == []  # closed once, quiet after


def test_every_command_creates_state_owner_only(tmp_path: Path) -> None:
    """`flows.prefect_env.configure` (every command, before it writes): umask 077, and the
    Prefect home (the API's SQLite database) 0700."""
    code = (
        "import os, sys; from pathlib import Path; from flows import prefect_env; "
        "prefect_env.configure(Path(sys.argv[1])); "
        "print(oct(os.umask(0)), oct(os.stat(os.environ['PREFECT_HOME']).st_mode & 0o777))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "state")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.split() == ["0o77", "0o700"], out.stderr


# --- masking: what an error or a record quotes -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://app:Pw-x9@db:5432/crm", "postgresql://app:***@db:5432/crm"),
        ("host=db user=app password=Pw-x9 dbname=crm", "host=db user=app password=*** dbname=crm"),
        ("Server=db;PWD=Pw-x9;Database=crm", "Server=db;PWD=***;Database=crm"),
        ('{"api_key": "Pw-x9", "region": "eu"}', '{"api_key": ***, "region": "eu"}'),
        ("token=Pw-x9&page=2", "token=***&page=2"),
        ("client_secret: 'Pw-x9'", "client_secret: ***"),
        ("Authorization: Bearer eyJhbGciOi.Pw-x9", "Authorization: Bearer ***"),
        ("authorization=Pw-x9", "authorization=***"),
        ("account_id,account_name,created_at", "account_id,account_name,created_at"),
    ],
)
def test_mask_text_masks_what_looks_like_a_secret(text: str, shown: str) -> None:
    from flows.masking import mask_text

    assert mask_text(text) == shown


def test_mask_text_masks_every_secret_read_and_bounds_the_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.masking import forget_secrets, mask_text

    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "CRM_TOKEN").write_text("plain-token-4711\n")
    (folder / "CRM_TOKEN").chmod(0o600)
    monkeypatch.setenv(SECRETS_DIR_ENV, str(folder))
    monkeypatch.setenv("BILLING_DSN", "postgresql://u:p%40ss-99@h/db")
    try:
        read_secret("CRM_TOKEN"), read_secret("BILLING_DSN")
        said = mask_text("first line: plain-token-4711 | p@ss-99 | p%40ss-99 | ok")
        assert said == "first line: *** | *** | *** | ok"
    finally:
        forget_secrets()
    long = mask_text("x" * 100_000 + "password=Pw-x9", limit=50)
    assert len(long) < 100 and long.endswith("(100014 characters)")
    assert "Pw-x9" not in mask_text("y" * 30 + " password=Pw-x9 " + "z" * 30, limit=40)


def test_the_log_filter_masks_messages_and_tracebacks() -> None:
    import io
    import logging

    from flows.masking import MaskFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskFilter())
    logger = logging.getLogger("tests.masking")
    logger.addHandler(handler)
    try:
        logger.warning("first line %s", "postgresql://app:Pw-x9@db/crm")
        try:
            raise ValueError("token=Pw-x9")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    said = stream.getvalue()
    assert "Pw-x9" not in said and "app:***@db" in said and "token=***" in said
