"""The dbt project on small generated data: generated once, loaded into raw, built in-process.

Session fixtures give a landing zone (80 accounts x 8 months of demo extracts), a warehouse
with only `raw` loaded, and a copy of it built with `dbt build`. Tests copy these files
before changing anything, so they stay independent of each other and of test order.
The `dbt` fixture runs dbt the way flows/transform/dbt.py does and reads tables back.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT = ROOT / "dbt_project"
PROFILES = ROOT / "profiles"

ACCOUNTS, MONTHS, SEED = 80, 8, 7
# over a year: annual plans are invoiced inside the data, and a backtest fits
YEAR_ACCOUNTS, YEAR_MONTHS = 150, 15
AS_OF = date(2026, 10, 31)  # the generator's default end_date: the last day of data
HORIZON_DAYS = 90
LABELS = (
    "label_expansion",
    "label_upsell",
    "label_cross_sell",
    "expansion_mrr_next",
    "is_label_complete",
)
# the incremental snapshot models (macros/snapshot_incremental.sql)
SNAPSHOTTED = (
    "int_account_usage_snapshotted",
    "int_account_tickets_snapshotted",
    "int_account_nps_snapshotted",
    "int_account_activities_snapshotted",
    "int_account_invoices_snapshotted",
    "int_account_opportunities_snapshotted",
    "int_account_contracts_snapshotted",
    "int_account_companions_snapshotted",
    "int_account_movements_snapshotted",
    "int_product_companions_measured",
    "int_account_labels_snapshotted",
)
# ... of them, those with labels: their plan also recomputes the dates whose labels were not
# complete, and the dates up to the label horizon before a changed record
LABELLED = ("int_account_labels_snapshotted",)
# when a row was written, not what it holds
LINEAGE = {"_built_at", "_inputs_loaded_at", "_build_fingerprint", "recomputed"}
MARTS = (
    "accounts",
    "contracts",
    "mrr_movements",
    "mrr_billing_reconciliation",
    "revenue_metrics_monthly",
    "account_snapshots",
    "account_metric_snapshots",
    "account_features",
)


def run_dbt(
    command: Sequence[str],
    work: Path,
    *,
    warehouse: Path | None = None,
    as_of: date = AS_OF,
    target: str = "local",
    env: dict[str, str] | None = None,
    project: Path = DBT_PROJECT,
    dbt_vars: dict[str, Any] | None = None,
    check: bool = True,
) -> Any:
    """`dbt <command>` in this process, as flows/transform/dbt.py runs it; fails the test on
    error unless `check` is false (then the caller reads the result).

    `work` holds dbt's target and log folders (partial parsing is reused between calls that
    share it). `dbt_vars` are passed besides as_of and label_horizon_days.
    """
    from dbt.cli.main import dbtRunner

    args = [
        *command,
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(PROFILES),
        "--target",
        target,
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
        "--vars",
        json.dumps(
            {"as_of": as_of.isoformat(), "label_horizon_days": HORIZON_DAYS, **(dbt_vars or {})}
        ),
    ]
    values = {
        "EXPANSION_TARGET": target,
        "EXPANSION_DBT_THREADS": "2",
        "EXPANSION_DUCKDB_MEMORY_LIMIT": "1GB",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        **(env or {}),
    }
    if warehouse is not None:
        values["EXPANSION_WAREHOUSE_PATH"] = str(warehouse)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in values.items():
            mp.setenv(key, value)
        result = dbtRunner().invoke(args)
    if check and not result.success:
        failures = [
            f"{r.node.unique_id}: {r.message}"
            for r in (getattr(result.result, "results", None) or [])
            if str(getattr(r.status, "value", r.status)).lower() in {"error", "fail"}
        ]
        detail = "\n".join(failures) or repr(result.exception)
        pytest.fail(f"dbt {' '.join(command)} failed (logs in {work / 'logs'}):\n{detail}")
    return result


def read(warehouse: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def differences(incremental: Path, full: Path) -> dict[str, tuple[int, int]]:
    """Rows only in the incremental build / only in the full refresh, per table of the
    staging, intermediate and marts schemas, leaving out the LINEAGE columns."""
    con = duckdb.connect()
    try:
        con.execute(f"attach '{incremental}' as inc (read_only)")
        con.execute(f"attach '{full}' as ful (read_only)")
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = 'inc' "
            "and schema_name in ('staging', 'intermediate', 'marts') order by all"
        ).fetchall()
        found: dict[str, tuple[int, int]] = {}
        for schema, name in tables:
            columns = [
                c
                for (c,) in con.execute(
                    "select column_name from duckdb_columns() where database_name = 'inc' "
                    "and schema_name = ? and table_name = ? order by column_index",
                    [schema, name],
                ).fetchall()
                if c not in LINEAGE
            ]
            cols = ", ".join(f'"{c}"' for c in columns)
            counts = []
            for a, b in (("inc", "ful"), ("ful", "inc")):
                row = con.execute(
                    f"select count(*) from (select {cols} from {a}.{schema}.{name} "
                    f"except all select {cols} from {b}.{schema}.{name})"
                ).fetchone()
                counts.append(int(row[0]) if row else -1)
            found[f"{schema}.{name}"] = (counts[0], counts[1])
        return found
    finally:
        con.close()


def built_from(warehouse: Path, model: str) -> dict[date, set]:
    """snapshot_date -> the _inputs_loaded_at values of its rows in an incremental snapshot
    model: which build computed each date."""
    frame = read(
        warehouse,
        f"select distinct snapshot_date, _inputs_loaded_at from intermediate.{model}",
    )
    out: dict[date, set] = {}
    for d, loaded in zip(frame["snapshot_date"], frame["_inputs_loaded_at"], strict=True):
        out.setdefault(d.date() if isinstance(d, datetime) else d, set()).add(loaded)
    return out


def copy_warehouse(source: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "warehouse.duckdb"
    shutil.copy(source, target)
    return target


@dataclass(frozen=True)
class Dbt:
    """What the dbt tests share: the constants of the data set and the helpers above."""

    as_of: date = AS_OF
    horizon_days: int = HORIZON_DAYS
    labels: tuple[str, ...] = LABELS
    marts: tuple[str, ...] = MARTS
    snapshotted: tuple[str, ...] = SNAPSHOTTED
    labelled: tuple[str, ...] = LABELLED

    run = staticmethod(run_dbt)
    read = staticmethod(read)
    copy = staticmethod(copy_warehouse)
    differences = staticmethod(differences)
    built_from = staticmethod(built_from)


@pytest.fixture(scope="session")
def dbt() -> Dbt:
    return Dbt()


@pytest.fixture(scope="session")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo extracts: 80 accounts, 8 months ending at AS_OF."""
    from demo import generate

    root = tmp_path_factory.mktemp("dbt-data")
    generate(root / "landing", root / "oracle", accounts=ACCOUNTS, months=MONTHS, seed=SEED)
    return root / "landing"


@pytest.fixture(scope="session")
def raw_warehouse(landing: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse with the extracts loaded into `raw` and nothing built yet. Copy before use."""
    from flows.ingest.load import load_landing
    from flows.warehouse import Warehouse

    warehouse = tmp_path_factory.mktemp("dbt-raw") / "warehouse.duckdb"
    load_landing(landing, Warehouse(warehouse, memory_limit="1GB"), "dbt-tests")
    return warehouse


@pytest.fixture(scope="session")
def year_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo extracts over more than a year (YEAR_ACCOUNTS x YEAR_MONTHS months ending at AS_OF),
    for what needs a full annual billing cycle or a backtest; its oracle is next to it."""
    from demo import generate

    root = tmp_path_factory.mktemp("dbt-year")
    generate(root / "landing", root / "oracle", accounts=YEAR_ACCOUNTS, months=YEAR_MONTHS, seed=5)
    return root / "landing"


@pytest.fixture(scope="session")
def year_raw_warehouse(year_landing: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`year_landing` loaded into `raw`, nothing built. Copy before use."""
    from flows.ingest.load import load_landing
    from flows.warehouse import Warehouse

    warehouse = tmp_path_factory.mktemp("dbt-year-raw") / "warehouse.duckdb"
    load_landing(year_landing, Warehouse(warehouse, memory_limit="1GB"), "dbt-tests")
    return warehouse


@pytest.fixture(scope="session")
def built_warehouse(raw_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`raw_warehouse` after `dbt build` (seeds, models, data and unit tests). Copy before use."""
    work = tmp_path_factory.mktemp("dbt-built")
    warehouse = copy_warehouse(raw_warehouse, work)
    run_dbt(["build"], work, warehouse=warehouse)
    return warehouse
