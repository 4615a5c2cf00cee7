"""The raw loader: contract checks, quarantine policy, ledger, lineage, fsspec sources."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import duckdb
import fsspec
import pandas as pd
import pytest

from flows.errors import ExtractError
from flows.ingest.contract import TABLES
from flows.ingest.load import _overlapping, load_landing, load_sources
from flows.ingest.sources import BadRows, SourcesConfig, SourceSpec
from flows.warehouse import Warehouse
from models.business import Business

ACCOUNTS = (
    "account_id,account_name,industry,country,employee_count,segment,owner_name,owner_email,"
    "created_at,updated_at\n"
)
CHANGES = "change_id,subscription_id,effective_at,plan_id,quantity,unit_amount,currency\n"
CUSTOMERS = "customer_id,crm_account_id,currency,created_at,updated_at\n"
SUBSCRIPTIONS = (
    "subscription_id,customer_id,product_id,billing_period_months,term_months,started_at,"
    "canceled_at,updated_at\n"
)
MINIMAL = {
    ("crm", "accounts", "accounts_1.csv"): ACCOUNTS
    + "A1,Acme,tech,US,10,smb,Jo,jo@example.com,2024-01-01T00:00:00Z,2024-01-01T00:00:00Z\n",
    (
        "billing",
        "products",
        "products_1.csv",
    ): "product_id,product_name,product_family\nP1,Core,core\n",
    ("billing", "plans", "plans_1.csv"): (
        "plan_id,product_id,plan_name,tier_rank,list_price,currency\nPL1,P1,Starter,1,10.00,USD\n"
    ),
    ("billing", "customers", "customers_1.csv"): CUSTOMERS + "C1,A1,USD,2024-01-01,2024-01-01\n",
    ("billing", "subscriptions", "subscriptions_1.csv"): SUBSCRIPTIONS
    + "S1,C1,P1,12,12,2024-01-01,,2024-01-01\n",
    ("billing", "subscription_changes", "changes_1.csv"): CHANGES
    + "X1,S1,2024-01-01,PL1,5,120.00,USD\n",
}


def write(landing: Path, source: str, table: str, name: str, content: str | bytes) -> Path:
    path = landing / source / table / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def minimal_landing(landing: Path) -> None:
    """One row in every required table; every optional table absent."""
    for (source, table, name), text in MINIMAL.items():
        write(landing, source, table, name, text)
    usage = landing / "usage" / "usage_daily" / "usage_daily_2024-01.parquet"
    usage.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "account_id": ["A1"],
            "usage_date": [pd.Timestamp("2024-01-02").date()],
            "metric": ["active_users"],
            "value": [3.0],
        }
    ).to_parquet(usage)


def counts(warehouse: Path) -> dict[str, int]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {
            t.raw_relation: con.execute(f"select count(*) from raw.{t.raw_relation}").fetchone()[0]
            for t in TABLES
        }
    finally:
        con.close()


@pytest.fixture
def loaded(tmp_path: Path) -> tuple[Path, Path, dict[str, int]]:
    landing, wh = tmp_path / "landing", tmp_path / "wh.duckdb"
    minimal_landing(landing)
    load_landing(landing, Warehouse(wh), "run-1")
    return landing, wh, counts(wh)


def test_loads_each_file_once_with_lineage(loaded: tuple[Path, Path, dict[str, int]]) -> None:
    landing, wh, before = loaded
    assert before["crm__accounts"] == 1 and before["crm__nps_responses"] == 0
    again = load_landing(landing, Warehouse(wh), "run-2")
    assert again.loaded == [] and again.skipped_files == len(MINIMAL) + 1
    assert counts(wh) == before  # the same extract twice leaves raw unchanged
    con = duckdb.connect(str(wh), read_only=True)
    row = con.execute("select _run_id, _source_file, created_at from raw.crm__accounts").fetchone()
    ledger = con.execute("select count(*), sum(row_count) from raw._load_ledger").fetchone()
    con.close()
    assert row[0] == "run-1" and row[1].endswith("accounts_1.csv")
    assert str(row[2]) == "2024-01-01 00:00:00"
    assert ledger == (len(MINIMAL) + 1, len(MINIMAL) + 1)


def test_full_refresh_reloads_everything_once(loaded: tuple[Path, Path, dict[str, int]]) -> None:
    landing, wh, before = loaded
    report = load_landing(landing, Warehouse(wh), "run-2", full_refresh=True)
    assert len(report.loaded) == len(MINIMAL) + 1
    assert counts(wh) == before


def test_offsets_to_utc_gzip_bom_and_extra_columns(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh.duckdb"
    minimal_landing(landing)
    body = (
        "account_id,account_name,industry,country,employee_count,segment,owner_name,"
        "owner_email,created_at,updated_at,crm_tier\n"
        "A2,Beta,,DE,,mid_market,,,2024-02-01T10:00:00+02:00,2024-02-01T10:00:00+02:00,gold\n"
    )
    with gzip.open(landing / "crm" / "accounts" / "accounts_2.csv.gz", "wb") as fh:
        fh.write(b"\xef\xbb\xbf" + body.encode())
    load_landing(landing, Warehouse(wh), "run-1")
    con = duckdb.connect(str(wh), read_only=True)
    created, extra = con.execute(
        "select created_at, _extra from raw.crm__accounts where account_id = 'A2'"
    ).fetchone()
    con.close()
    assert str(created) == "2024-02-01 08:00:00"
    assert '"crm_tier":"gold"' in extra.replace(" ", "")


def test_a_second_independent_export_layout_loads(tmp_path: Path) -> None:
    """Parquet instead of CSV, split files in subfolders, extra columns, optional tables absent."""
    landing, wh = tmp_path / "landing", tmp_path / "wh.duckdb"
    minimal_landing(landing)
    accounts = landing / "crm" / "accounts"
    for f in accounts.iterdir():
        f.unlink()
    frame = pd.DataFrame(
        {
            "account_id": ["A1", "A2"],
            "account_name": ["Acme", "Beta"],
            "segment": ["smb", "enterprise"],
            "created_at": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "updated_at": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "legacy_score": [1, 2],
        }
    )
    (accounts / "2024" / "01").mkdir(parents=True)
    frame.iloc[:1].to_parquet(accounts / "2024" / "01" / "part-0.parquet")
    frame.iloc[1:].to_parquet(accounts / "2024" / "01" / "part-1.parquet")
    write(
        landing,
        "crm",
        "nps_responses",
        "nps.jsonl",
        '{"response_id": "N1", "account_id": "A2", "score": 10, "responded_at": "2024-03-01T00:00:00Z"}\n',
    )
    report = load_landing(landing, Warehouse(wh), "run-1")
    assert report.rows_by_table["crm.accounts"] == 2
    assert report.rows_by_table["crm.nps_responses"] == 1
    assert counts(wh)["crm__support_tickets"] == 0


BadCase = Callable[[Path], None]


def _bad_value(table: str, name: str, text: str) -> BadCase:
    source = "crm" if table in {"accounts", "contacts", "nps_responses"} else "billing"
    return lambda landing: write(landing, source, table, name, text) and None


BAD_INPUTS: dict[str, tuple[BadCase, list[str]]] = {
    "missing required column": (
        _bad_value("products", "products_2.csv", "product_id,product_name\nP2,Other\n"),
        ["products_2.csv", "missing required column(s) product_family"],
    ),
    "wrong type": (
        _bad_value(
            "accounts",
            "accounts_2.csv",
            ACCOUNTS + "A2,Beta,,US,twelve,smb,,,2024-01-01,2024-01-01\n",
        ),
        ["accounts_2.csv", "row 1", "column employee_count", "'twelve'", "not a valid INTEGER"],
    ),
    "unparseable date": (
        _bad_value(
            "accounts", "accounts_2.csv", ACCOUNTS + "A2,Beta,,US,1,smb,,,2024-13-45,2024-01-01\n"
        ),
        ["accounts_2.csv", "row 1", "column created_at", "'2024-13-45'", "not a valid TIMESTAMP"],
    ),
    "null key": (
        _bad_value(
            "products",
            "products_2.csv",
            "product_id,product_name,product_family\n,Nameless,addon\n",
        ),
        ["products_2.csv", "row 1", "column product_id", "is empty; a value is required"],
    ),
    "duplicate key": (
        _bad_value(
            "products",
            "products_2.csv",
            "product_id,product_name,product_family\nP2,A,addon\nP3,B,addon\nP2,C,addon\n",
        ),
        [
            "products_2.csv",
            "row 3",
            "column product_id",
            "'P2'",
            "repeats a primary key already in row 1",
        ],
    ),
    "negative amount": (
        _bad_value(
            "subscription_changes", "changes_2.csv", CHANGES + "X2,S1,2024-02-01,PL1,5,-10.00,USD\n"
        ),
        ["changes_2.csv", "row 1", "column unit_amount", "'-10.00'", "below the minimum 0"],
    ),
    "unknown currency": (
        _bad_value(
            "subscription_changes", "changes_2.csv", CHANGES + "X2,S1,2024-02-01,PL1,5,10.00,XYZ\n"
        ),
        ["changes_2.csv", "row 1", "column currency", "'XYZ'", "not an ISO 4217 currency code"],
    ),
    "fraction in a zero-decimal currency": (
        _bad_value(
            "subscription_changes",
            "changes_2.csv",
            CHANGES + "X2,S1,2024-02-01,PL1,5,1250.50,JPY\n",
        ),
        [
            "changes_2.csv",
            "row 1",
            "column unit_amount",
            "'1250.50'",
            "more decimals than its currency JPY allows (0)",
        ],
    ),
    "child without parent": (
        _bad_value(
            "subscription_changes", "changes_2.csv", CHANGES + "X2,S9,2024-02-01,PL1,5,10.00,USD\n"
        ),
        [
            "changes_2.csv",
            "row 1",
            "column subscription_id",
            "'S9'",
            "no matching billing.subscriptions.subscription_id",
        ],
    ),
    "non-UTF-8": (
        _bad_value(
            "accounts",
            "accounts_2.csv",
            (ACCOUNTS + "A2,Caf\xe9,,FR,1,smb,,,2024-01-01,2024-01-01\n").encode("latin-1"),
        ),  # type: ignore[arg-type]
        ["accounts_2.csv", "row 1, column account_name", "not utf-8", "line 2 of the file"],
    ),
    "truncated file": (
        _bad_value(
            "accounts",
            "accounts_2.csv",
            ACCOUNTS + "A2,Beta,,US,1,smb,,,2024-01-01,2024-01-01\nA3,Gam",
        ),
        [
            "accounts_2.csv",
            "row 2, column industry",
            "line 3 of the file",
            "Expected Number of Columns: 10 Found: 2",
        ],
    ),
    "empty file": (
        _bad_value("accounts", "accounts_2.csv", ""),
        ["accounts_2.csv", "the file is empty"],
    ),
    "wrong delimiter": (
        _bad_value(
            "products", "products_2.csv", "product_id;product_name;product_family\nP2;A;addon\n"
        ),
        [
            "products_2.csv",
            "missing required column(s) product_id, product_name, product_family",
            "the file looks delimited by ';', the expected delimiter is ','",
        ],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_named_and_loads_nothing(
    case: str, loaded: tuple[Path, Path, dict[str, int]]
) -> None:
    landing, wh, before = loaded
    make_bad, expected = BAD_INPUTS[case]
    write(
        landing,
        "crm",
        "accounts",
        "accounts_ok.csv",
        ACCOUNTS + "A7,Fine,,US,1,smb,,,2024-01-01,2024-01-01\n",
    )
    make_bad(landing)
    with pytest.raises(ExtractError) as info:
        load_landing(landing, Warehouse(wh), "run-2")
    message = str(info.value)
    for part in expected:
        assert part in message, f"{part!r} not in:\n{message}"
    assert counts(wh) == before  # nothing of the failed load was kept, not even the good file
    con = duckdb.connect(str(wh), read_only=True)
    recorded = con.execute(
        "select count(*) from raw._quarantine where run_id = 'run-2' and disposition = 'rejected'"
    ).fetchone()[0]
    con.close()
    assert recorded >= 1


def test_quarantine_policy_keeps_good_rows_and_records_bad_ones(
    loaded: tuple[Path, Path, dict[str, int]],
) -> None:
    landing, wh, before = loaded
    write(
        landing,
        "billing",
        "subscription_changes",
        "changes_2.csv",
        CHANGES + "X2,S1,2024-02-01,PL1,6,10.00,USD\nX3,S1,2024-03-01,PL1,-1,10.00,USD\n",
    )
    report = load_landing(
        landing,
        Warehouse(wh),
        "run-2",
        bad_rows=BadRows(tables={"billing.subscription_changes": "quarantine"}),
    )
    assert report.rows_by_table["billing.subscription_changes"] == 1
    assert [(v.row, v.column) for v in report.quarantined] == [(2, "quantity")]
    assert (
        counts(wh)["billing__subscription_changes"] == before["billing__subscription_changes"] + 1
    )
    con = duckdb.connect(str(wh), read_only=True)
    q = con.execute(
        "select source_file, row_number, column_name, value, reason, disposition from raw._quarantine"
    ).fetchall()
    con.close()
    assert len(q) == 1 and q[0][1:] == (
        2,
        "quantity",
        "-1",
        "is below the minimum 0",
        "quarantined",
    )


def test_required_table_without_any_extract_is_named(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh.duckdb"
    minimal_landing(landing)
    for f in (landing / "billing" / "plans").iterdir():
        f.unlink()
    with pytest.raises(ExtractError, match=r"required table billing\.plans has no rows"):
        load_landing(landing, Warehouse(wh), "run-1")


def test_any_fsspec_filesystem_works(tmp_path: Path) -> None:
    local = tmp_path / "landing"
    minimal_landing(local)
    fs = fsspec.filesystem("memory")
    for path in local.rglob("*"):
        if path.is_file():
            fs.pipe(f"/exports/{path.relative_to(local).as_posix()}", path.read_bytes())
    config = SourcesConfig(
        sources={
            s: SourceSpec(type="files", url=f"memory:///exports/{s}")
            for s in ("crm", "billing", "usage")
        }
    )
    report = load_sources(config, Warehouse(tmp_path / "wh.duckdb"), "run-1")
    assert report.rows_by_table["crm.accounts"] == 1
    assert report.loaded[0].path.startswith("memory://")
    assert load_sources(config, Warehouse(tmp_path / "wh.duckdb"), "run-2").loaded == []


def _usage_file(landing: Path, name: str, rows: list[tuple[str, str, str, float]]) -> Path:
    path = landing / "usage" / "usage_daily" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "usage_date": [pd.Timestamp(r[1]).date() for r in rows],
            "metric": [r[2] for r in rows],
            "value": [r[3] for r in rows],
        }
    ).to_parquet(path)
    return path


def test_overlapping_groups_only_files_whose_key_ranges_meet() -> None:
    from datetime import date

    jan, feb = (date(2024, 1, 1), date(2024, 1, 31)), (date(2024, 2, 1), date(2024, 2, 29))
    accounts = ("A1", "A9")
    ranges = {
        "jan.parquet": [accounts, jan],
        "feb.parquet": [accounts, feb],
        "feb-late.parquet": [accounts, (date(2024, 2, 20), date(2024, 3, 2))],
        "mar-other.parquet": [("B1", "B9"), (date(2024, 3, 1), date(2024, 3, 1))],
    }
    assert _overlapping(ranges) == [["feb.parquet", "feb-late.parquet"]]
    assert _overlapping({k: ranges[k] for k in ("jan.parquet", "mar-other.parquet")}) == []


def test_a_key_repeated_across_typed_files_is_named_and_nothing_loads(
    loaded: tuple[Path, Path, dict[str, int]],
) -> None:
    """Monthly files never meet; a late file repeating a key of another one is caught."""
    landing, wh, before = loaded
    _usage_file(landing, "usage_daily_2024-02.parquet", [("A1", "2024-02-01", "api_calls", 5.0)])
    _usage_file(
        landing,
        "usage_daily_2024-03.parquet",
        [("A1", "2024-03-01", "api_calls", 1.0), ("A1", "2024-03-02", "api_calls", 2.0)],
    )
    _usage_file(
        landing,
        "usage_daily_late.parquet",
        [("A1", "2024-03-03", "api_calls", 7.0), ("A1", "2024-03-02", "api_calls", 2.0)],
    )
    with pytest.raises(ExtractError) as info:
        load_landing(landing, Warehouse(wh), "run-2")
    message = str(info.value)
    assert "usage_daily_late.parquet, row 2, column account_id, usage_date, metric" in message
    assert "repeats a primary key already in row 2 of" in message
    assert "usage_daily_2024-03.parquet in this load" in message
    assert len(info.value.violations) == 1
    assert counts(wh) == before


def test_typed_parquet_values_load_as_they_are_and_are_checked(
    loaded: tuple[Path, Path, dict[str, int]],
) -> None:
    """A Parquet column in the contract's own type is not read through text, and still checked:
    trimmed ids, an empty metric, a negative value are all named as before."""
    landing, wh, _ = loaded
    _usage_file(
        landing,
        "usage_daily_2024-02.parquet",
        [(" A1 ", "2024-02-01", "api_calls", 0.1 + 0.2), ("A1", "2024-02-02", "api_calls", 1e-300)],
    )
    report = load_landing(landing, Warehouse(wh), "run-2")
    assert report.rows_by_table == {"usage.usage_daily": 2}
    con = duckdb.connect(str(wh), read_only=True)
    got = con.execute(
        "select account_id, usage_date, value from raw.usage__usage_daily "
        "where _run_id = 'run-2' order by usage_date"
    ).fetchall()
    con.close()
    assert [(a, str(d), v) for a, d, v in got] == [
        ("A1", "2024-02-01", 0.1 + 0.2),
        ("A1", "2024-02-02", 1e-300),
    ]
    _usage_file(
        landing,
        "usage_daily_2024-03.parquet",
        [("A1", "2024-03-01", " ", 1.0), ("A1", "2024-03-02", "api_calls", -4.0)],
    )
    with pytest.raises(ExtractError) as info:
        load_landing(landing, Warehouse(wh), "run-3")
    found = sorted((v.row, v.column, v.reason) for v in info.value.violations)
    assert found == [
        (1, "metric", "is empty; a value is required"),
        (2, "value", "is below the minimum 0"),
    ]


def test_a_failed_full_refresh_keeps_what_was_loaded(
    loaded: tuple[Path, Path, dict[str, int]],
) -> None:
    landing, wh, before = loaded
    write(
        landing,
        "billing",
        "products",
        "products_2.csv",
        "product_id,product_name,product_family\n,Nameless,addon\n",
    )
    with pytest.raises(ExtractError, match="is empty; a value is required"):
        load_landing(landing, Warehouse(wh), "run-2", full_refresh=True)
    assert counts(wh) == before
    con = duckdb.connect(str(wh), read_only=True)
    ledger = con.execute("select count(*) from raw._load_ledger").fetchone()[0]
    con.close()
    assert ledger == len(MINIMAL) + 1


def _business(*metrics: tuple[str, str | None]) -> Business:
    return Business.model_validate(
        {
            "usage_metrics": [
                {"name": n, "label": n, "aggregation": "sum", "limit_period": period}
                for n, period in metrics
            ]
        }
    )


def test_usage_metrics_are_the_declared_ones(tmp_path: Path) -> None:
    """A business with its own metric names loads them; a name it did not declare is a bad row
    naming the declared ones; the declaration reaches raw.config__usage_metrics only with a
    successful load."""
    landing, wh = tmp_path / "landing", tmp_path / "wh.duckdb"
    minimal_landing(landing)
    own = _business(("active_users", "day"), ("contacts_created", "month"), ("logins", None))
    write(
        landing,
        "billing",
        "plan_limits",
        "limits_1.csv",
        "plan_id,metric,limit_value,per_unit\nPL1,contacts_created,0,\nPL1,active_users,1,true\n",
    )
    report = load_landing(landing, Warehouse(wh), "run-1", business=own)
    assert report.raw_rows["billing.plan_limits"] == 2
    con = duckdb.connect(str(wh), read_only=True)
    declared = con.execute(
        "select metric, aggregation, limit_period from raw.config__usage_metrics order by metric"
    ).fetchall()
    limit = con.execute(
        "select limit_value from raw.billing__plan_limits where metric = 'contacts_created'"
    ).fetchone()
    con.close()
    assert declared == [
        ("active_users", "sum", "day"),
        ("contacts_created", "sum", "month"),
        ("logins", "sum", None),
    ]
    assert limit == (0.0,)  # a limit of 0 is a value, not a missing one

    usage = landing / "usage" / "usage_daily" / "usage_daily_2024-02.csv"
    usage.write_text(
        "account_id,usage_date,metric,value\nA1,2024-02-01,logins,4\nA1,2024-02-01,api_calls,9\n"
    )
    write(
        landing,
        "billing",
        "plan_limits",
        "limits_2.csv",
        "plan_id,metric,limit_value,per_unit\nPL1,logins,5,\n",
    )
    with pytest.raises(ExtractError) as err:
        load_landing(landing, Warehouse(wh), "run-2", business=_business(("logins", None)))
    message = str(err.value)
    assert "usage_daily_2024-02.csv" in message and "row 2" in message and "metric" in message
    assert "is not one of the usage metrics declared in the business declaration" in message
    assert "limits_2.csv" in message and "declared with a limit_period" in message
    con = duckdb.connect(str(wh), read_only=True)
    kept = con.execute("select count(*) from raw.config__usage_metrics").fetchone()
    con.close()
    assert kept == (3,)  # the failed load did not replace the declaration either


def test_a_raw_table_from_an_earlier_contract_gets_the_new_columns(tmp_path: Path) -> None:
    """A column added to the contract (optional) reaches raw tables created before it, so dbt
    can read it; the rows loaded before keep their values and leave it empty."""
    landing, wh = tmp_path / "landing", tmp_path / "wh.duckdb"
    minimal_landing(landing)
    con = duckdb.connect(str(wh))
    con.execute("create schema raw")
    con.execute(
        "create table raw.billing__plan_limits (plan_id varchar, metric varchar, "
        "limit_value double, _source_file varchar, _loaded_at timestamp, _run_id varchar)"
    )
    con.execute(
        "insert into raw.billing__plan_limits values ('PL1', 'active_users', 5, 'old.csv', now(), 'r0')"
    )
    con.close()
    load_landing(landing, Warehouse(wh), "run-1")
    con = duckdb.connect(str(wh), read_only=True)
    rows = con.execute(
        "select plan_id, limit_value, per_unit, overage_price, _extra from raw.billing__plan_limits"
    ).fetchall()
    con.close()
    assert rows == [("PL1", 5.0, None, None, None)]


def test_every_rule_across_tables_follows_references() -> None:
    """Each side of each contract agreement walks reference columns to a real column, so a
    mistake in flows/ingest/contract.py fails here rather than at a customer's load."""
    from flows.ingest.consistency import agreement_sql
    from flows.ingest.contract import TABLES, TABLES_BY_KEY, Agreement

    checked = 0
    for t in TABLES:
        for a in t.agreements:
            where, reason = agreement_sql(t, a, "rows")
            assert where.startswith("from rows s ") and a.reason.replace("'", "''") in reason
            checked += 1
    assert checked >= 4
    broken = Agreement(("currency", "product_id"), ("subscription_id", "product_id"), "x")
    with pytest.raises(
        ValueError, match=r"billing\.subscription_changes\.currency is not a reference"
    ):
        agreement_sql(TABLES_BY_KEY["billing.subscription_changes"], broken, "rows")
