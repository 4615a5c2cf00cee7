"""Every malformed extract of the corpus (tests/reliability/corpus/manifest.yml) is named or kept out.

Each case starts from the loaded baseline landing zone, adds its bad file(s) and loads again:

- `fail`: the load raises ExtractError naming file, row, column and reason of every problem,
  raw.* and the load ledger are exactly as before, and raw._quarantine records the problems
  (disposition `rejected`);
- `quarantine` (the table's bad_rows policy): the load goes through, raw._quarantine names every
  problem (disposition `quarantined`), exactly the good rows arrive and no other table changes;
- `accept`: the file loads as the contract says (BOM stripped, offsets converted, text kept
  literally) with nothing quarantined;
- `skip`: a copy of a loaded file is not loaded again, and the report names it.

A failed load is the pipeline's first stage, so it stops the run before anything is published:
the last test runs the real Prefect flow once on a bad case and checks the serving file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import flows.ingest.readers
from flows.errors import ExtractError
from flows.ingest.contract import TABLES, TABLES_BY_KEY
from flows.ingest.load import load_landing
from flows.ingest.readers import Violation
from flows.ingest.report import LoadReport
from flows.ingest.sources import BadRows
from flows.warehouse import Warehouse

CORPUS = Path(__file__).parent / "corpus"
BASELINE = CORPUS / "baseline"
CASES = CORPUS / "cases"
POLICIES = {"fail", "quarantine", "accept", "skip"}

ACCOUNTS_HEADER = (
    "account_id,account_name,industry,country,employee_count,segment,owner_name,owner_email,"
    "created_at,updated_at\n"
)
GOOD_ACCOUNT = (
    "00120,Hooli,software,US,300,mid_market,Sam Roe,sam@example.com,"
    "2026-11-01T09:00:00Z,2026-11-01T09:00:00Z\n"
)


@dataclass(frozen=True)
class Problem:
    file: str
    row: int | None
    column: str | None
    reason: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    table: str
    policy: str
    problems: tuple[Problem, ...] = ()
    message: tuple[str, ...] = ()
    arrives: dict[str, list[str]] = field(default_factory=dict)
    absent: dict[str, list[str]] = field(default_factory=dict)
    checks: tuple[dict[str, Any], ...] = ()
    duplicates: tuple[tuple[str, str], ...] = ()
    generate: str | None = None
    hook: str | None = None

    @property
    def files(self) -> list[Path]:
        folder = CASES / self.name
        return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def _case(entry: dict[str, Any]) -> Case:
    problems = tuple(
        Problem(
            p["file"],
            p["row"],
            p["column"],
            tuple(p["reason"]) if isinstance(p["reason"], list) else (p["reason"],),
        )
        for p in entry.get("problems", [])
    )
    return Case(
        name=entry["case"],
        what=entry["what"],
        table=entry["table"],
        policy=entry["policy"],
        problems=problems,
        message=tuple(entry.get("message", [])),
        arrives=entry.get("arrives", {}),
        absent=entry.get("absent", {}),
        checks=tuple(entry.get("checks", [])),
        duplicates=tuple(tuple(d) for d in entry.get("duplicates", [])),  # type: ignore[misc]
        generate=entry.get("generate"),
        hook=entry.get("hook"),
    )


def load_manifest() -> list[Case]:
    entries = yaml.safe_load((CORPUS / "manifest.yml").read_text(encoding="utf-8"))["cases"]
    return [_case(e) for e in entries]


# --- files written at test time (binary, or too large to commit) ------------------------------


def _write(landing: Path, relative: str, content: bytes) -> None:
    path = landing / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def _usage_parquet(landing: Path, columns: dict[str, pa.Array]) -> Path:
    path = landing / "usage" / "usage_daily" / "usage_daily_2026-11.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def latin1_accounts(landing: Path) -> None:
    row = (
        "00121,Caf\xe9 Brands,food,FR,15,smb,Dana Lee,dana@example.com,"
        "2026-11-01T09:00:00Z,2026-11-01T09:00:00Z\n"
    )
    _write(
        landing,
        "crm/accounts/accounts_20261101.csv",
        (ACCOUNTS_HEADER + GOOD_ACCOUNT + row).encode("latin-1"),
    )


def utf16_accounts(landing: Path) -> None:
    text = ACCOUNTS_HEADER + GOOD_ACCOUNT
    _write(landing, "crm/accounts/accounts_20261101.csv", text.encode("utf-16"))


def huge_text_cell(landing: Path) -> None:
    name = "x" * (10 * 1024 * 1024)
    row = f"00121,{name},software,US,1,smb,,,2026-11-01T09:00:00Z,2026-11-01T09:00:00Z\n"
    _write(
        landing,
        "crm/accounts/accounts_20261101.csv",
        (ACCOUNTS_HEADER + GOOD_ACCOUNT + row).encode(),
    )


def corrupt_parquet(landing: Path) -> None:
    _write(
        landing,
        "usage/usage_daily/usage_daily_2026-11.parquet",
        b"PAR1" + bytes(range(256)) * 4 + b"PAR1",
    )


def truncated_parquet(landing: Path) -> None:
    path = _usage_parquet(
        landing,
        {
            "account_id": pa.array(["00101", "00103"]),
            "usage_date": pa.array([date(2026, 11, 1)] * 2),
            "metric": pa.array(["active_users"] * 2),
            "value": pa.array([10.0, 47.0]),
        },
    )
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])


def parquet_text_values(landing: Path) -> None:
    _usage_parquet(
        landing,
        {
            "account_id": pa.array(["00101", "00102"]),
            "usage_date": pa.array([date(2026, 11, 1)] * 2),
            "metric": pa.array(["active_users"] * 2),
            "value": pa.array(["12", "lots"]),
        },
    )


def parquet_integer_account_ids(landing: Path) -> None:
    _usage_parquet(
        landing,
        {
            "account_id": pa.array([101, 102], pa.int64()),
            "usage_date": pa.array([date(2026, 11, 1)] * 2),
            "metric": pa.array(["active_users"] * 2),
            "value": pa.array([10.0, 4.0]),
        },
    )


def parquet_fractional_quantity(landing: Path) -> None:
    path = landing / "billing" / "subscription_changes" / "subscription_changes_20261101.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {
                "change_id": pa.array(["X120", "X121"]),
                "subscription_id": pa.array(["S101", "S101"]),
                "effective_at": pa.array(["2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"]),
                "plan_id": pa.array(["PL-CORE-2", "PL-CORE-2"]),
                "quantity": pa.array([10.0, 120.5]),
                "unit_amount": pa.array([25.0, 25.0]),
                "currency": pa.array(["USD", "USD"]),
            }
        ),
        path,
    )


def parquet_timestamp_usage_dates(landing: Path) -> None:
    _usage_parquet(
        landing,
        {
            "account_id": pa.array(["00101", "00102"]),
            "usage_date": pa.array(
                [datetime(2026, 11, 1), datetime(2026, 11, 1, 13, 45)], pa.timestamp("us")
            ),
            "metric": pa.array(["active_users"] * 2),
            "value": pa.array([10.0, 4.0]),
        },
    )


def parquet_four_decimal_prices(landing: Path) -> None:
    path = landing / "billing" / "plans" / "plans_20261101.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {
                "plan_id": pa.array(["PL-CORE-3", "PL-CORE-4"]),
                "product_id": pa.array(["P-CORE", "P-CORE"]),
                "plan_name": pa.array(["Core Plus", "Core Max"]),
                "tier_rank": pa.array([3, 4], pa.int64()),
                "list_price": pa.array(
                    [Decimal("10.5000"), Decimal("10.1250")], pa.decimal128(18, 4)
                ),
                "currency": pa.array(["USD", "USD"]),
            }
        ),
        path,
    )


GENERATORS: dict[str, Callable[[Path], None]] = {
    f.__name__: f
    for f in (
        latin1_accounts,
        utf16_accounts,
        huge_text_cell,
        corrupt_parquet,
        truncated_parquet,
        parquet_text_values,
        parquet_integer_account_ids,
        parquet_fractional_quantity,
        parquet_timestamp_usage_dates,
        parquet_four_decimal_prices,
    )
}


# --- the warehouse before and after ----------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return str(value)
    return value


def query(warehouse: Path, sql: str) -> list[list[Any]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return [[_plain(v) for v in row] for row in con.execute(sql).fetchall()]
    finally:
        con.close()


def snapshot(warehouse: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every raw table and of the load ledger (the corpus is tiny)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        out = {
            t.raw_relation: con.execute(
                f"select * exclude (_extra), cast(_extra as varchar) from raw.{t.raw_relation} "
                "order by all"
            ).fetchall()
            for t in TABLES
        }
        out["_load_ledger"] = con.execute("select * from raw._load_ledger order by all").fetchall()
        return out
    finally:
        con.close()


def keys(warehouse: Path, tables: list[str]) -> dict[str, set[str]]:
    """The primary keys in raw.<table> of each table, columns joined by "|"."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        out = {}
        for table in tables:
            t = TABLES_BY_KEY[table]
            cols = ", ".join(f'cast("{k}" as varchar)' for k in t.primary_key)
            rows = con.execute(f"select concat_ws('|', {cols}) from raw.{t.raw_relation}")
            out[table] = {r[0] for r in rows.fetchall()}
        return out
    finally:
        con.close()


@dataclass(frozen=True)
class Baseline:
    landing: Path
    warehouse: Path


@pytest.fixture(scope="session")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """The valid landing zone, loaded once; each case starts from a copy of both."""
    root = tmp_path_factory.mktemp("baseline")
    landing, warehouse = root / "landing", root / "warehouse.duckdb"
    shutil.copytree(BASELINE, landing)
    load_landing(landing, Warehouse(warehouse), "baseline")
    return Baseline(landing, warehouse)


@pytest.fixture
def project(tmp_path: Path, baseline: Baseline) -> Baseline:
    """A private copy of the baseline landing zone and of its loaded warehouse."""
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse.duckdb"
    shutil.copytree(baseline.landing, landing)
    shutil.copyfile(baseline.warehouse, warehouse)
    return Baseline(landing, warehouse)


MANIFEST = load_manifest()
RUN = "bad-input"


def test_the_manifest_describes_every_case_and_every_file() -> None:
    names = [c.name for c in MANIFEST]
    assert len(names) >= 30 and len(set(names)) == len(names)
    assert sorted(p.name for p in CASES.iterdir() if p.is_dir()) == sorted(
        c.name for c in MANIFEST if c.files
    )
    for case in MANIFEST:
        assert case.policy in POLICIES, case.name
        assert case.table in TABLES_BY_KEY, case.name
        assert case.files or case.generate, f"{case.name}: no file and nothing generated"
        assert case.generate is None or case.generate in GENERATORS, case.name
        if case.policy in {"fail", "quarantine"}:
            assert case.problems, f"{case.name}: a bad case must say what the error names"
        else:
            assert not case.problems, case.name
            assert case.checks or case.duplicates or case.arrives, f"{case.name}: nothing checked"
        for path in case.files:  # each file sits where a landing zone would have it
            source, table = path.relative_to(CASES / case.name).parts[:2]
            assert f"{source}.{table}" in TABLES_BY_KEY, path


def _quarantine(warehouse: Path, disposition: str) -> list[list[Any]]:
    return query(
        warehouse,
        "select source_file, row_number, column_name, value, reason from raw._quarantine "
        f"where run_id = '{RUN}' and disposition = '{disposition}'",
    )


def _named(case: Case, found: list[tuple[str, int | None, str | None, str]]) -> None:
    """`found` (file, row, column, reason) names exactly the case's problems."""
    where = sorted(
        ((Path(f).name, r, c) for f, r, c, _ in found), key=lambda x: (x[0], x[1] or 0, x[2] or "")
    )
    expected = sorted(
        ((p.file, p.row, p.column) for p in case.problems),
        key=lambda x: (x[0], x[1] or 0, x[2] or ""),
    )
    assert where == expected, f"{case.name}: problems named {where}, expected {expected}"
    for p in case.problems:
        reasons = [
            reason for f, r, c, reason in found if (Path(f).name, r, c) == (p.file, p.row, p.column)
        ]
        for fragment in p.reason:
            assert any(fragment in reason for reason in reasons), (
                f"{case.name}: {fragment!r} not in the reason(s) {reasons}"
            )


def _violations(violations: list[Violation]) -> list[tuple[str, int | None, str | None, str]]:
    return [(v.source_file, v.row, v.column, v.reason) for v in violations]


def _append_while_reading(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    """The exporter appends a row to its file after DuckDB has read it, before the loader is done.

    The loader takes the file's checksum again once it has read it; the row is appended just
    then, which is the moment a writer that is still busy changes the file under the reader.
    """
    real = flows.ingest.readers.content_sha256

    def checksum_after_the_writer(uri: str) -> str:
        if uri.endswith("accounts_20261101.csv"):
            with open(uri, "a", encoding="utf-8") as fh:
                fh.write(
                    "00121,Pied Piper,software,US,12,smb,,,"
                    "2026-11-01T09:00:00Z,2026-11-01T09:00:00Z\n"
                )
        return real(uri)

    monkeypatch.setattr(flows.ingest.readers, "content_sha256", checksum_after_the_writer)


def _setup(case: Case, project: Baseline) -> None:
    for path in case.files:
        target = project.landing / path.relative_to(CASES / case.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    if case.generate:
        GENERATORS[case.generate](project.landing)


def _arrivals(case: Case, project: Baseline, before: dict[str, set[str]]) -> None:
    after = keys(project.warehouse, list(before))
    for table, expected in case.arrives.items():
        new = after[table] - before[table]
        assert new == set(expected), f"{case.name}: {table} gained {new}, expected {expected}"
    for table, gone in case.absent.items():
        assert not set(gone) & after[table], f"{case.name}: {gone} in {table}"


def _checks(case: Case, warehouse: Path) -> None:
    for check in case.checks:
        assert query(warehouse, check["sql"]) == check["rows"], f"{case.name}: {check['sql']}"


@pytest.mark.parametrize("case", MANIFEST, ids=[c.name for c in MANIFEST])
def test_bad_input(case: Case, project: Baseline, monkeypatch: pytest.MonkeyPatch) -> None:
    _setup(case, project)
    if case.hook == "append_while_reading":
        _append_while_reading(case, monkeypatch)
    before = snapshot(project.warehouse)
    keys_before = keys(project.warehouse, sorted({*case.arrives, *case.absent}))
    policy = BadRows(tables={case.table: "quarantine"}) if case.policy == "quarantine" else None

    if case.policy == "fail":
        with pytest.raises(ExtractError) as info:
            load_landing(project.landing, Warehouse(project.warehouse), RUN, bad_rows=policy)
        assert snapshot(project.warehouse) == before  # nothing of the failed load was kept
        _named(case, _violations(info.value.violations))
        recorded = _quarantine(project.warehouse, "rejected")
        _named(case, [(f, r, c, reason) for f, r, c, _, reason in recorded])
        message = str(info.value)
        assert len(message) < 20_000  # a 10 MB value is not repeated in the message
        for p in case.problems:
            parts = [p.file, *p.reason]
            parts += [f"row {p.row}"] if p.row is not None else []
            parts += [f"column {p.column}"] if p.column is not None else []
            for part in parts:
                assert part in message, f"{case.name}: {part!r} not in:\n{message}"
        for part in case.message:
            assert part in message, f"{case.name}: {part!r} not in:\n{message}"
        if case.hook == "append_while_reading":
            monkeypatch.undo()  # the file is complete now: the next run loads all of it
            report = load_landing(project.landing, Warehouse(project.warehouse), "next-run")
            assert report.rows_by_table == {case.table: 2}
            assert {"00120", "00121"} <= keys(project.warehouse, [case.table])[case.table]
        return

    report: LoadReport = load_landing(
        project.landing, Warehouse(project.warehouse), RUN, bad_rows=policy
    )
    after = snapshot(project.warehouse)
    if case.policy == "quarantine":
        _named(case, _violations(report.quarantined))
        recorded = _quarantine(project.warehouse, "quarantined")
        _named(case, [(f, r, c, reason) for f, r, c, _, reason in recorded])
        raw = TABLES_BY_KEY[case.table].raw_relation
        assert {k: v for k, v in after.items() if k not in {raw, "_load_ledger"}} == {
            k: v for k, v in before.items() if k not in {raw, "_load_ledger"}
        }
        assert report.quarantined_by_table == {case.table: len(case.problems)}
    else:
        assert report.quarantined == [] and _quarantine(project.warehouse, "quarantined") == []
    if case.policy == "skip":
        assert report.loaded == [] and after == before
    assert sorted((Path(d.path).name, Path(d.same_as).name) for d in report.duplicates) == sorted(
        case.duplicates
    )
    _arrivals(case, project, keys_before)
    _checks(case, project.warehouse)


# --- a failed load stops the run before anything is published ---------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _published(serving: Path) -> dict[str, Any]:
    """The serving file's bytes and the Parquet versions BI reads."""
    parquet = serving / "parquet"
    return {
        "expansion.duckdb": _sha(serving / "expansion.duckdb"),
        "current": os.readlink(parquet / "current"),
        "versions": {
            str(f.relative_to(parquet)): _sha(f) for f in (parquet / "versions").rglob("*.parquet")
        },
    }


def _stand_in_serving(warehouse: Path, serving: Path) -> None:
    """A serving version as an earlier run left it, written by the real publisher. Real marts
    and scores take dbt and training (a minute or more); these relations hold a few raw rows,
    which is all this test needs: published bytes that must not change."""
    from flows.delivery.publish import PUBLISHED, publish
    from flows.warehouse import Warehouse

    con = duckdb.connect(str(warehouse))
    try:
        for relation in PUBLISHED.values():
            con.execute(f"create schema if not exists {relation.split('.')[0]}")
            con.execute(
                f"create or replace table {relation} as "
                "select account_id, account_name from raw.crm__accounts"
            )
    finally:
        con.close()
    publish(Warehouse(warehouse), serving, "earlier-run", "2026-10-31", "stand-in")


def test_a_failed_load_stops_the_run_before_publish(project: Baseline, tmp_path: Path) -> None:
    """The pipeline's own stage list (flows.pipeline.STAGES), outside Prefect, on a bad case:
    the load raises, no later stage runs, the serving file keeps its bytes, raw its rows."""
    from flows.pipeline import STAGES, RunContext, Stage, run_stages
    from flows.settings import Settings

    settings = Settings(
        home=tmp_path / "state", landing_dir=project.landing, duckdb_memory_limit="1GB"
    )
    settings.warehouse.parent.mkdir(parents=True)
    shutil.copyfile(project.warehouse, settings.warehouse)
    _stand_in_serving(settings.warehouse, settings.serving)
    (case,) = [c for c in MANIFEST if c.name == "orphan_usage"]
    _setup(case, project)
    published, before = _published(settings.serving), snapshot(settings.warehouse)

    ran: list[str] = []

    def noting(stage: Stage) -> Stage:
        return Stage(stage.name, lambda ctx: (ran.append(stage.name), stage.run(ctx)), stage.when)

    with pytest.raises(ExtractError) as info:
        run_stages(RunContext(settings, RUN, prefect=False), [noting(s) for s in STAGES])
    assert ran == ["load"]
    assert "usage_daily_2026-11.csv, row 2, column account_id: value '00999'" in str(info.value)
    assert _published(settings.serving) == published
    assert snapshot(settings.warehouse) == before
