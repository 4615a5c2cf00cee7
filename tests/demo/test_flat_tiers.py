"""The flat-tier demo business: its extracts load as they are, carry flat tiers with bundled
limits, terms and add-on packs, its oracle matches the extracts, and no pipeline code names its
metrics."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from demo import BUSINESSES, GenerationSummary, generate
from flows.ingest.contract import TABLES, Table
from flows.ingest.load import load_landing
from flows.warehouse import Warehouse
from models.business import Business, load_business

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "examples" / "flat_tiers" / "business.yml"
END = date(2026, 10, 31)


@pytest.fixture(scope="module")
def business() -> Business:
    return load_business(CONFIG)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationSummary]:
    root = tmp_path_factory.mktemp("flat_tiers")
    summary = generate(
        root / "landing", root / "oracle", accounts=200, months=14, seed=5, business="flat_tiers"
    )
    return root, summary


def _source(root: Path, t: Table) -> str:
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
        if not (root / "landing" / t.source / t.name).is_dir():
            assert t.optional, f"{t.source}.{t.name} is required"
            continue
        c.execute(f"create table {t.name} as select * from {_source(root, t)}")
    c.execute(f"create table oracle as select * from '{root}/oracle/expansion_oracle.parquet'")
    c.execute(
        "create view subs as select s.*, c.crm_account_id account_id, p.product_family "
        "from subscriptions s join customers c using (customer_id) join products p using (product_id)"
    )
    return c


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> Any:
    row = con.execute(sql, params or []).fetchone()
    assert row is not None
    return row[0]


def test_registry_names_the_business_and_its_declaration() -> None:
    entry = BUSINESSES["flat_tiers"]
    assert (ROOT / entry.config).resolve() == CONFIG
    assert (ROOT / BUSINESSES["per_seat"].config).is_file()
    with pytest.raises(
        ValueError, match="unknown demo business 'nope'; known: per_seat, flat_tiers"
    ):
        generate(Path("unused"), Path("unused"), business="nope")


def test_the_declaration_is_a_realistic_metric_set(business: Business) -> None:
    by_aggregation = {a: [m for m in business.usage_metrics if m.aggregation == a] for a in
                      ("sum", "level", "distinct")}  # fmt: skip
    assert len(business.usage_metrics) >= 15
    assert all(by_aggregation.values())
    assert {m.limit_period for m in business.usage_metrics} == {"day", "month", "held", None}
    assert all(m.label_in("ja") != m.label_in("en") for m in business.usage_metrics)


def test_the_project_loader_takes_every_file(
    small: tuple[Path, GenerationSummary], business: Business, tmp_path: Path
) -> None:
    root, summary = small
    report = load_landing(root / "landing", Warehouse(tmp_path / "w.duckdb"), business=business)
    assert report.quarantined == []
    assert {k: n for k, n in report.raw_rows.items() if n} == summary.rows
    assert all(rows > 0 for rows in summary.rows.values())


def test_usage_is_the_declared_metrics_one_row_per_key(
    con: duckdb.DuckDBPyConnection, business: Business
) -> None:
    written = {r[0] for r in con.execute("select distinct metric from usage_daily").fetchall()}
    assert written == set(business.metric_names)
    keys = "select count(*) - count(distinct (account_id, usage_date, metric)) from usage_daily"
    assert _one(con, keys) == 0
    assert _one(con, "select count(*) from usage_daily where value < 0") == 0
    # sum metrics have no row on days without events; levels and distinct counts every day
    sums = [m.name for m in business.usage_metrics if m.aggregation == "sum"]
    zero = "select count(*) from usage_daily where value = 0 and list_contains(?, metric)"
    assert _one(con, zero, [sums]) == 0
    per_day = con.execute(
        "select distinct count(*) from usage_daily where not list_contains(?, metric) "
        "group by account_id, usage_date",
        [sums],
    ).fetchall()
    assert per_day == [(len(business.metric_names) - len(sums),)]


def test_flat_tiers_on_three_terms_with_bundled_limits(con: duckdb.DuckDBPyConnection) -> None:
    plans = con.execute(
        "select tier_rank, pricing_model, billing_period_months, count(*) from plans "
        "join products using (product_id) where product_family = 'core' group by all order by all"
    ).fetchall()
    assert plans == [(r, "flat", p, 1) for r in range(1, 6) for p in (1, 6, 12)]
    # a higher tier costs more on every period and includes at least as much of every metric
    worse = _one(
        con,
        """
        select count(*) from plans a join plans b using (product_id, billing_period_months)
        join plan_limits la on la.plan_id = a.plan_id join plan_limits lb
          on lb.plan_id = b.plan_id and lb.metric = la.metric
        where b.tier_rank = a.tier_rank + 1
          and (b.list_price <= a.list_price or lb.limit_value < la.limit_value)
        """,
    )
    assert worse == 0
    zero = "select count(*) from plan_limits join plans using (plan_id) where tier_rank = 1 and limit_value = 0"
    assert _one(con, zero) >= 1 * 3  # the entry tier includes none of some metric, every period
    # core versions: quantity 1 at the plan's price for the subscription's period, whole yen
    bad = _one(
        con,
        """
        select count(*) from subscription_changes ch join subs using (subscription_id)
        join plans p using (plan_id)
        where p.billing_period_months <> subs.billing_period_months
           or (subs.product_family = 'core' and (ch.quantity <> 1
               or ch.unit_amount > p.list_price * subs.billing_period_months
               or ch.unit_amount < 0.75 * p.list_price * subs.billing_period_months))
           or ch.unit_amount <> round(ch.unit_amount) or ch.currency <> 'JPY'
        """,
    )
    assert bad == 0
    terms = con.execute(
        "select distinct term_months, billing_period_months from subs order by 1"
    ).fetchall()
    assert terms == [(1, 1), (6, 6), (12, 12)]


def test_add_on_packs_raise_limits_and_are_sold(con: duckdb.DuckDBPyConnection) -> None:
    per_unit = con.execute(
        "select distinct per_unit, product_family from plan_limits join plans using (plan_id) "
        "join products using (product_id) order by all"
    ).fetchall()
    assert per_unit == [(False, "core"), (True, "addon")]
    add_on_metrics = {
        r[0]
        for r in con.execute(
            "select metric from plan_limits join plans using (plan_id) "
            "join products using (product_id) where product_family = 'addon'"
        ).fetchall()
    }
    assert len(add_on_metrics) == 2
    more_packs = _one(
        con,
        """
        select count(*) from (
          select ch.quantity > lag(ch.quantity) over (partition by subscription_id
                 order by effective_at) up
          from subscription_changes ch join subs using (subscription_id)
          where product_family = 'addon') where up
        """,
    )
    assert more_packs > 0
    assert (
        _one(con, "select count(distinct account_id) from subs where product_family = 'addon'") > 10
    )


def test_term_contracts_upgrade_mostly_at_renewal(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        """
        with v as (
          select ch.effective_at, p.tier_rank, subs.term_months, subs.started_at,
                 lag(p.tier_rank) over (partition by subscription_id order by effective_at) prev
          from subscription_changes ch join subs using (subscription_id) join plans p using (plan_id)
          where subs.product_family = 'core')
        select term_months > 1, count(*), count(*) filter (where
          strftime(effective_at, '%d %H:%M:%S') = strftime(started_at, '%d %H:%M:%S'))
        from v where tier_rank > prev and effective_at >= date '2025-09-01' group by 1 order by 1
        """
    ).fetchall()
    (_, monthly, _), (_, term, at_renewal) = rows
    assert monthly > 0
    assert at_renewal >= 0.6 * term


def test_optional_firmographics_are_absent(con: duckdb.DuckDBPyConnection) -> None:
    assert _one(con, "select count(*) from accounts where segment is not null") == 0
    assert _one(con, "select count(*) from accounts where country is null") > 0
    assert _one(con, "select count(*) from accounts where employee_count is null") > 0
    currencies = con.execute(
        "select distinct currency from customers union select distinct currency from plans"
    ).fetchall()
    assert currencies == [("JPY",)]
    for table, col in [("invoices", "amount_due"), ("opportunities", "amount")]:
        assert _one(con, f"select count(*) from {table} where {col} <> round({col})") == 0


CORE_DAYS = """
    create or replace temp view core_days as
    with v as (
      select subs.account_id, ch.effective_at, ch.plan_id, p.tier_rank,
             coalesce(lead(ch.effective_at) over (partition by subscription_id
                      order by effective_at), subs.canceled_at, timestamp '9999-01-01') until
      from subscription_changes ch join subs using (subscription_id) join plans p using (plan_id)
      where subs.product_family = 'core')
    select u.*, v.plan_id, v.tier_rank from usage_daily u join v on v.account_id = u.account_id
      and u.usage_date >= v.effective_at and u.usage_date + 1 <= v.until
"""


def test_the_tier_in_force_caps_usage(con: duckdb.DuckDBPyConnection) -> None:
    """On a day the whole of which one tier was in force: no more active seats than it includes,
    and no API requests or workflow runs where it includes none (a quota of 0 is a limit)."""
    con.execute(CORE_DAYS)
    over = _one(
        con,
        """
        select count(*) from core_days d join plan_limits l
          on l.plan_id = d.plan_id and l.metric = d.metric
        where d.metric = 'active_seats' and d.value > l.limit_value
           or d.metric in ('api_requests', 'workflow_runs') and l.limit_value = 0
        """,
    )
    assert over == 0
    assert _one(con, "select count(*) from core_days where metric = 'active_seats'") > 1000


def test_usage_only_while_subscribed(con: duckdb.DuckDBPyConnection) -> None:
    uncovered = _one(
        con,
        """
        select count(*) from usage_daily u where not exists (
            select 1 from subs s where s.account_id = u.account_id and s.product_family = 'core'
              and u.usage_date >= s.started_at::date
              and u.usage_date < coalesce(s.canceled_at::date, date '9999-01-01'))
        """,
    )
    assert uncovered == 0


def test_partial_last_month_and_tiny_sizes(tmp_path: Path) -> None:
    end = date(2026, 3, 15)
    summary = generate(
        tmp_path / "landing", tmp_path / "oracle", accounts=5, months=3, seed=1, end_date=end,
        business="flat_tiers",
    )  # fmt: skip
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


def test_oracle_labels_match_the_extracts(con: duckdb.DuckDBPyConnection) -> None:
    """upsell = a version raising quantity or tier; cross-sell = an add-on subscription started
    on a day after the account's first core subscription."""
    cols = [d[0] for d in con.execute("describe oracle").fetchall()]
    assert cols == [
        "account_id", "snapshot_date", "p_upsell_month", "p_cross_sell_month", "p_expansion_90d",
        "label_expansion_90d", "label_upsell_90d", "label_cross_sell_90d", "is_label_complete",
    ]  # fmt: skip
    mismatches = _one(
        con,
        """
        with versions as (
            select subs.account_id, ch.effective_at, p.tier_rank, ch.quantity,
                   lag(ch.quantity) over w prev_quantity, lag(p.tier_rank) over w prev_tier
            from subscription_changes ch join subs using (subscription_id) join plans p using (plan_id)
            window w as (partition by ch.subscription_id order by ch.effective_at)),
        first_core as (
            select account_id, min(started_at)::date first_day from subs
            where product_family = 'core' group by 1),
        events as (
            select account_id, effective_at::date event_date, 'upsell' kind from versions
            where quantity > prev_quantity or tier_rank > prev_tier
            union all
            select s.account_id, s.started_at::date, 'cross_sell' from subs s
            join first_core f using (account_id)
            where s.product_family = 'addon' and s.started_at::date > f.first_day),
        derived as (
            select o.account_id, o.snapshot_date,
                coalesce(bool_or(e.kind = 'upsell'), false) up,
                coalesce(bool_or(e.kind = 'cross_sell'), false) cross_sell
            from oracle o left join events e on e.account_id = o.account_id
                and e.event_date > o.snapshot_date and e.event_date <= o.snapshot_date + 90
            group by all)
        select count(*) from oracle o join derived d using (account_id, snapshot_date)
        where d.up <> o.label_upsell_90d or d.cross_sell <> o.label_cross_sell_90d
           or (d.up or d.cross_sell) <> o.label_expansion_90d
        """,
    )
    assert mismatches == 0
    assert _one(con, "select count(*) from oracle where p_expansion_90d not between 0 and 1") == 0
    # the 90-day probability compounds three months, so it is at least the next month's
    below = (
        "select count(*) from oracle where p_expansion_90d + 1e-12 < "
        "1 - (1 - p_upsell_month) * (1 - p_cross_sell_month)"
    )
    assert _one(con, below) == 0
    inactive = _one(
        con,
        """
        select count(*) from oracle o where not exists (
            select 1 from subs s where s.account_id = o.account_id and s.product_family = 'core'
              and s.started_at::date <= o.snapshot_date
              and coalesce(s.canceled_at::date, date '9999-01-01') > o.snapshot_date)
        """,
    )
    assert inactive == 0


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
            months=5,
            seed=seed,
            business="flat_tiers",
        )
        runs[name] = _digest(tmp_path / name)
    assert runs["a"] == runs["b"]
    assert runs["a"].keys() == runs["c"].keys()
    static = ("products", "plans", "plan_limits")  # the price list does not depend on the seed
    assert all(runs["a"][k] != runs["c"][k] for k in runs["a"] if not any(s in k for s in static))


def test_tuning_targets(tmp_path: Path) -> None:
    """Base rate and oracle AUC of the 90-day label; both kinds of expansion happen."""
    summary = generate(
        tmp_path / "landing", tmp_path / "oracle", accounts=800, months=24, seed=42,
        business="flat_tiers",
    )  # fmt: skip
    assert 0.06 <= summary.base_rate <= 0.18
    assert 0.76 <= summary.oracle_auc <= 0.9
    total = summary.upsell_events + summary.cross_sell_events
    assert summary.upsell_events >= 0.25 * total
    assert summary.cross_sell_events >= 0.25 * total


# --- configuration, not code ---------------------------------------------------------------------

PIPELINE_CODE = ("flows", "models", "dbt_project")


@pytest.mark.parametrize(
    "declaration", ["config/examples/flat_tiers/business.yml", "config/business.yml"]
)
def test_no_pipeline_code_names_a_metric_of_this_business(declaration: str) -> None:
    """Each demo business runs from its declaration alone: no Python or SQL file of the
    pipeline (nor the model's params) spells one of its metric names."""
    business = load_business(ROOT / declaration)
    files = [
        p
        for folder in PIPELINE_CODE
        for p in sorted((ROOT / folder).rglob("*"))
        if p.suffix in (".py", ".sql") or p.name == "params.yaml"
        if not {"target", "dbt_packages", "logs"} & set(p.relative_to(ROOT).parts)
    ]
    assert len(files) > 20
    named = [
        f"{p.relative_to(ROOT)}: {metric}"
        for p in files
        for metric in business.metric_names
        if re.search(rf"\b{metric}\b", p.read_text(encoding="utf-8", errors="replace"))
    ]
    assert named == []
