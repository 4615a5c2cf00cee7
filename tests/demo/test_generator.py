"""The demo generator writes the extract contract exactly, deterministically, and tuned."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from demo import GenerationSummary, generate
from flows.ingest.contract import TABLES as CONTRACT_TABLES
from flows.ingest.contract import Table

END = date(2026, 10, 31)
# the demo writes every contract table but billing.exchange_rates (optional: its currencies
# convert at the static rates)
TABLES = tuple(t for t in CONTRACT_TABLES if (t.source, t.name) != ("billing", "exchange_rates"))
STAMP = "20261031"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationSummary]:
    root = tmp_path_factory.mktemp("demo_small")
    summary = generate(root / "landing", root / "oracle", accounts=250, months=14, seed=3)
    return root, summary


def _source(root: Path, t: Table) -> str:
    """A DuckDB table expression reading the table's files with the contract types."""
    folder = root / "landing" / t.source / t.name
    if t.file_format == "parquet":
        return f"read_parquet('{folder}/*.parquet')"
    cols = ", ".join(f"'{c.name}': '{c.type}'" for c in t.columns)
    return f"read_csv('{folder}/*.csv', header=true, auto_detect=false, columns={{{cols}}})"


@pytest.fixture(scope="module")
def con(small: tuple[Path, GenerationSummary]) -> duckdb.DuckDBPyConnection:
    root, _ = small
    c = duckdb.connect()
    for t in TABLES:
        c.execute(f"create table {t.source}__{t.name} as select * from {_source(root, t)}")
    c.execute(f"create table oracle as select * from '{root}/oracle/expansion_oracle.parquet'")
    return c


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> Any:
    row = con.execute(sql, params or []).fetchone()
    assert row is not None
    return row[0]


# --- layout and schema -------------------------------------------------------------------------


def test_layout_follows_the_export_conventions(small: tuple[Path, GenerationSummary]) -> None:
    root, summary = small
    landing = root / "landing"
    for t in TABLES:
        folder = landing / t.source / t.name
        if t.file_format == "csv":
            assert sorted(p.name for p in folder.iterdir()) == [f"{t.name}_{STAMP}.csv"]
        else:
            names = sorted(p.name for p in folder.iterdir())
            assert len(names) == 14
            assert names[0] == "usage_daily_2025-09.parquet"
            assert names[-1] == "usage_daily_2026-10.parquet"
    assert (root / "oracle" / "expansion_oracle.parquet").exists()
    assert (root / "oracle" / "mrr_monthly.parquet").exists()
    assert len(summary.files) == 14 + 13 + 2  # usage months, CSV tables, two oracle files
    assert all(p.exists() for p in summary.files)


@pytest.mark.parametrize("t", TABLES, ids=lambda t: f"{t.source}.{t.name}")
def test_every_table_has_exactly_the_contract_columns(
    small: tuple[Path, GenerationSummary], con: duckdb.DuckDBPyConnection, t: Table
) -> None:
    root, summary = small
    folder = root / "landing" / t.source / t.name
    expected = [c.name for c in t.columns]
    if t.file_format == "csv":
        header = next(folder.glob("*.csv")).read_text(encoding="utf-8").splitlines()[0]
        assert [h.strip('"') for h in header.split(",")] == expected
    else:
        for path in folder.glob("*.parquet"):
            schema = pq.read_schema(path)
            assert schema.names == expected
            assert schema.types == [pa.string(), pa.date32(), pa.string(), pa.float64()]
    described = con.execute(f"describe {t.source}__{t.name}").fetchall()
    assert [(d[0], d[1]) for d in described] == [(c.name, c.type) for c in t.columns]
    rows = _one(con, f"select count(*) from {t.source}__{t.name}")
    assert rows == summary.rows[f"{t.source}.{t.name}"]
    assert rows > 0


@pytest.mark.parametrize("t", TABLES, ids=lambda t: f"{t.source}.{t.name}")
def test_primary_keys_are_unique_and_required_columns_filled(
    con: duckdb.DuckDBPyConnection, t: Table
) -> None:
    name = f"{t.source}__{t.name}"
    pk = ", ".join(t.primary_key)
    assert _one(con, f"select count(*) - count(distinct ({pk})) from {name}") == 0
    for col in t.required_columns:
        assert _one(con, f"select count(*) from {name} where {col} is null") == 0, col


FOREIGN_KEYS = [
    ("crm__contacts", "account_id", "crm__accounts", "account_id"),
    ("crm__opportunities", "account_id", "crm__accounts", "account_id"),
    ("crm__activities", "account_id", "crm__accounts", "account_id"),
    ("crm__support_tickets", "account_id", "crm__accounts", "account_id"),
    ("crm__nps_responses", "account_id", "crm__accounts", "account_id"),
    ("crm__nps_responses", "contact_id", "crm__contacts", "contact_id"),
    ("billing__plans", "product_id", "billing__products", "product_id"),
    ("billing__customers", "crm_account_id", "crm__accounts", "account_id"),
    ("billing__subscriptions", "customer_id", "billing__customers", "customer_id"),
    ("billing__subscriptions", "product_id", "billing__products", "product_id"),
    (
        "billing__subscription_changes",
        "subscription_id",
        "billing__subscriptions",
        "subscription_id",
    ),
    ("billing__subscription_changes", "plan_id", "billing__plans", "plan_id"),
    ("billing__invoices", "customer_id", "billing__customers", "customer_id"),
    ("billing__invoices", "subscription_id", "billing__subscriptions", "subscription_id"),
    ("usage__usage_daily", "account_id", "crm__accounts", "account_id"),
]


@pytest.mark.parametrize(("child", "fk", "parent", "pk"), FOREIGN_KEYS)
def test_foreign_keys_resolve(
    con: duckdb.DuckDBPyConnection, child: str, fk: str, parent: str, pk: str
) -> None:
    orphans = _one(
        con,
        f"select count(*) from {child} c where c.{fk} is not null "
        f"and not exists (select 1 from {parent} p where p.{pk} = c.{fk})",
    )
    assert orphans == 0


def test_contract_values_are_in_their_domains(con: duckdb.DuckDBPyConnection) -> None:
    checks = {
        "crm__accounts": "segment not in ('smb', 'mid_market', 'enterprise')",
        "crm__opportunities": "opportunity_type not in ('new_business', 'upsell', 'cross_sell', "
        "'renewal') or stage not in ('open', 'closed_won', 'closed_lost') "
        "or (stage = 'open') <> (closed_at is null)",
        "crm__activities": "activity_type not in ('email', 'call', 'meeting', 'qbr')",
        "crm__support_tickets": "priority not in ('low', 'normal', 'high', 'urgent') "
        "or closed_at < opened_at",
        "crm__nps_responses": "score not between 0 and 10",
        "billing__products": "product_family not in ('core', 'addon')",
        "billing__subscriptions": "billing_period_months not in (1, 12) or term_months <> 12 "
        "or canceled_at <= started_at",
        "billing__invoices": "status not in ('paid', 'open', 'void', 'uncollectible') "
        "or (status = 'paid') <> (paid_at is not null) or due_at <> issued_at + interval 30 day",
        "usage__usage_daily": "metric not in ('active_users', 'api_calls', 'storage_gb', "
        "'features_used') or value < 0 or (metric = 'features_used' and value > 30)",
    }
    for name, bad in checks.items():
        assert _one(con, f"select count(*) from {name} where {bad}") == 0, name
    assert _one(con, "select count(distinct currency) from billing__customers") >= 3
    assert _one(con, "select count(distinct product_id) from billing__plans") == 5


def test_jpy_amounts_are_whole_yen(con: duckdb.DuckDBPyConnection) -> None:
    for name, col in [
        ("billing__subscription_changes", "unit_amount"),
        ("billing__invoices", "amount_due"),
        ("crm__opportunities", "amount"),
    ]:
        frac = f"select count(*) from {name} where currency = 'JPY' and {col} <> round({col})"
        assert _one(con, frac) == 0, name


# --- time -------------------------------------------------------------------------------------


def test_no_timestamp_after_end_date(con: duckdb.DuckDBPyConnection) -> None:
    limit = datetime.combine(END + timedelta(days=1), datetime.min.time())
    for t in TABLES:
        for c in t.columns:
            # due_at is a scheduled date: an invoice issued in the last month is due later
            if c.type in ("TIMESTAMP", "DATE") and (t.name, c.name) != ("invoices", "due_at"):
                sql = f"select count(*) from {t.source}__{t.name} where {c.name} >= ?"
                assert _one(con, sql, [limit]) == 0, f"{t.name}.{c.name}"
    first = _one(con, "select min(usage_date) from usage__usage_daily")
    assert first == date(2025, 9, 1)


def test_versions_are_ordered(con: duckdb.DuckDBPyConnection) -> None:
    for t in TABLES:
        if t.updated_at is None:
            continue
        created = next(
            c.name
            for c in t.columns
            if c.name in ("created_at", "started_at", "opened_at", "issued_at")
        )
        bad = _one(con, f"select count(*) from {t.source}__{t.name} where updated_at < {created}")
        assert bad == 0, t.name
    # the first change row of a subscription is its start; none after its cancellation
    bad = _one(
        con,
        """
        select count(*) from (
            select s.subscription_id, s.started_at, s.canceled_at,
                   min(c.effective_at) first_at, max(c.effective_at) last_at
            from billing__subscriptions s join billing__subscription_changes c using (subscription_id)
            group by all)
        where first_at <> started_at or last_at >= coalesce(canceled_at, timestamp '9999-01-01')
        """,
    )
    assert bad == 0
    # survey answers come from contacts who exist at that time
    early = _one(
        con,
        "select count(*) from crm__nps_responses n join crm__contacts c using (contact_id) "
        "where n.responded_at < c.created_at or n.account_id <> c.account_id",
    )
    assert early == 0


def test_usage_only_while_subscribed(con: duckdb.DuckDBPyConnection) -> None:
    """No usage before the first subscription or after churn, except after a reactivation."""
    uncovered = _one(
        con,
        """
        with service as (
            select c.crm_account_id account_id, s.started_at::date first_day,
                   coalesce(s.canceled_at::date, date '9999-01-01') end_day
            from billing__subscriptions s join billing__customers c using (customer_id)
            where s.product_id = 'prod_core_crm')
        select count(*) from usage__usage_daily u
        where not exists (
            select 1 from service v where v.account_id = u.account_id
              and u.usage_date >= v.first_day and u.usage_date < v.end_day)
        """,
    )
    assert uncovered == 0
    # and every active day of service has all four metrics
    per_day = con.execute(
        "select distinct n from (select count(*) n from usage__usage_daily group by account_id, usage_date)"
    ).fetchall()
    assert per_day == [(4,)]
    reactivated = _one(
        con,
        "select count(*) from (select customer_id from billing__subscriptions "
        "where product_id = 'prod_core_crm' group by 1 having count(*) > 1)",
    )
    assert isinstance(reactivated, int)


# --- oracle -----------------------------------------------------------------------------------


def test_oracle_labels_match_the_extracts(con: duckdb.DuckDBPyConnection) -> None:
    """The labels are what the extracts say: upsell = a change row raising quantity or tier
    of a subscription; cross-sell = an add-on subscription started after the account's first
    core subscription (new business and reactivation are neither)."""
    con.execute(
        """
        create or replace table expansion_events as
        with acct as (
            select s.*, c.crm_account_id account_id
            from billing__subscriptions s join billing__customers c using (customer_id)),
        versions as (
            select ch.*, a.account_id, p.tier_rank,
                   lag(ch.quantity) over w prev_quantity, lag(p.tier_rank) over w prev_tier
            from billing__subscription_changes ch
            join acct a using (subscription_id) join billing__plans p using (plan_id)
            window w as (partition by ch.subscription_id order by ch.effective_at)),
        first_core as (
            select account_id, min(started_at)::date first_day from acct
            where product_id = 'prod_core_crm' group by 1)
        select account_id, effective_at::date event_date, 'upsell' kind from versions
        where quantity > prev_quantity or tier_rank > prev_tier
        union all
        select a.account_id, a.started_at::date, 'cross_sell' from acct a
        join billing__products p using (product_id) join first_core f using (account_id)
        where p.product_family = 'addon' and a.started_at::date > f.first_day
        """
    )
    mismatches = _one(
        con,
        """
        with derived as (
            select o.account_id, o.snapshot_date,
                coalesce(bool_or(e.kind = 'upsell'), false) up,
                coalesce(bool_or(e.kind = 'cross_sell'), false) cross_sell
            from oracle o left join expansion_events e on e.account_id = o.account_id
                and e.event_date > o.snapshot_date and e.event_date <= o.snapshot_date + 90
            group by all)
        select count(*) from oracle o join derived d using (account_id, snapshot_date)
        where d.up <> o.label_upsell_90d or d.cross_sell <> o.label_cross_sell_90d
           or (d.up or d.cross_sell) <> o.label_expansion_90d
        """,
    )
    assert mismatches == 0


def test_oracle_rows(con: duckdb.DuckDBPyConnection) -> None:
    cols = [d[0] for d in con.execute("describe oracle").fetchall()]
    assert cols == [
        "account_id",
        "snapshot_date",
        "p_upsell_month",
        "p_cross_sell_month",
        "p_expansion_90d",
        "label_expansion_90d",
        "label_upsell_90d",
        "label_cross_sell_90d",
        "is_label_complete",
    ]
    assert (
        _one(con, "select count(*) from oracle where snapshot_date <> last_day(snapshot_date)") == 0
    )
    assert _one(con, "select count(*) from oracle where p_expansion_90d not between 0 and 1") == 0
    incomplete = "select count(*) from oracle where is_label_complete <> (snapshot_date + 90 <= ?)"
    assert _one(con, incomplete, [END]) == 0
    # only accounts with service at the snapshot
    inactive = _one(
        con,
        """
        select count(*) from oracle o where not exists (
            select 1 from billing__subscriptions s join billing__customers c using (customer_id)
            where c.crm_account_id = o.account_id and s.product_id = 'prod_core_crm'
              and s.started_at::date <= o.snapshot_date
              and coalesce(s.canceled_at::date, date '9999-01-01') > o.snapshot_date)
        """,
    )
    assert inactive == 0


# --- determinism and tuning -------------------------------------------------------------------


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        generate(
            tmp_path / name / "landing",
            tmp_path / name / "oracle",
            accounts=60,
            months=6,
            seed=seed,
        )
        runs[name] = _digest(tmp_path / name)
    assert runs["a"] == runs["b"]
    assert runs["a"].keys() == runs["c"].keys()
    static = ("products", "plans", "plan_limits")  # the price list does not depend on the seed
    assert all(runs["a"][k] != runs["c"][k] for k in runs["a"] if not any(s in k for s in static))


def test_partial_last_month_and_tiny_sizes(tmp_path: Path) -> None:
    end = date(2026, 3, 15)
    summary = generate(
        tmp_path / "landing", tmp_path / "oracle", accounts=5, months=3, seed=1, end_date=end
    )
    usage = sorted((tmp_path / "landing" / "usage" / "usage_daily").iterdir())
    assert [p.name for p in usage] == [f"usage_daily_2026-0{m}.parquet" for m in (1, 2, 3)]
    assert summary.rows["crm.accounts"] == 5
    con = duckdb.connect()
    last = _one(con, f"select max(usage_date) from read_parquet('{usage[-1]}')")
    assert last is None or last <= end
    snaps = con.execute(
        f"select distinct snapshot_date from '{tmp_path}/oracle/expansion_oracle.parquet' order by 1"
    ).fetchall()
    assert [s[0] for s in snaps] == [date(2026, 1, 31), date(2026, 2, 28)]


def test_tuning_targets(tmp_path: Path) -> None:
    """Base rate and oracle AUC of the 90-day expansion label at a realistic size."""
    summary = generate(tmp_path / "landing", tmp_path / "oracle", accounts=1500, months=24, seed=42)
    oracle = pq.read_table(tmp_path / "oracle" / "expansion_oracle.parquet").to_pandas()
    done = oracle[oracle["is_label_complete"]]
    label = done["label_expansion_90d"].to_numpy(dtype=bool)
    base_rate = float(label.mean())
    auc = float(roc_auc_score(label, done["p_expansion_90d"]))
    assert 0.03 <= base_rate <= 0.15
    assert 0.75 <= auc <= 0.88
    assert np.isclose(summary.base_rate, base_rate)
    assert np.isclose(summary.oracle_auc, auc)
    up = done["label_upsell_90d"].to_numpy(dtype=bool).sum()
    cross = done["label_cross_sell_90d"].to_numpy(dtype=bool).sum()
    assert up >= 0.25 * label.sum()
    assert cross >= 0.25 * label.sum()
    assert summary.upsell_events >= 0.25 * (summary.upsell_events + summary.cross_sell_events)
    assert summary.cross_sell_events >= 0.25 * (summary.upsell_events + summary.cross_sell_events)


def test_rerun_replaces_earlier_exports(tmp_path: Path) -> None:
    landing, oracle = tmp_path / "landing", tmp_path / "oracle"
    generate(landing, oracle, accounts=20, months=4, seed=1, end_date=date(2026, 9, 30))
    generate(landing, oracle, accounts=20, months=3, seed=1)
    csvs = sorted(p.name for p in (landing / "crm" / "accounts").iterdir())
    assert csvs == [f"accounts_{STAMP}.csv"]
    usage = sorted(p.name for p in (landing / "usage" / "usage_daily").iterdir())
    assert usage == [f"usage_daily_2026-{m}.parquet" for m in ("08", "09", "10")]
