"""Offers from the catalogue (marts.account_offers) on a per-seat and a flat-tier catalogue.

The per-seat demo (USD list prices, plans sold on any period, add-ons per seat) is the shared
built warehouse; the flat-tier demo (five flat JPY tiers, one plan per tier and billing period,
add-on packs per pack that raise one limit) is generated, loaded with its own declaration and
built here, reported in JPY. On both, every offer is checked against the price list read back
from staging: the upsell's target (the next tier of the same product at the account's billing
period, more seats, or an add-on that raises the pressed limit), its value (the list-price
difference under the pricing model), the top tier, and the cross-sell's target and value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
DECLARATION = PROJECT_DIR / "config" / "examples" / "flat_tiers" / "business.yml"
THRESHOLD = 0.85  # dbt_project.yml, offer_limit_threshold

OFFERS_SQL = """
select
    offers.*,
    contracts.is_active,
    contracts.core_plan_id,
    contracts.core_quantity,
    contracts.core_billing_period_months,
    metrics.usage_against_limit as limit_usage
from marts.account_offers as offers
left join intermediate.int_account_contracts_snapshotted as contracts
    using (account_id, snapshot_date)
left join marts.account_metric_snapshots as metrics
    on metrics.account_id = offers.account_id
    and metrics.snapshot_date = offers.snapshot_date
    and metrics.metric = offers.upsell_limit_metric
"""


@pytest.fixture(scope="module")
def flat_tiers_warehouse(dbt, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The flat-tier demo (120 accounts x 8 months) loaded and built up to account_offers."""
    from demo.generator import generate
    from flows.ingest.load import load_landing
    from flows.warehouse import Warehouse
    from models.business import load_business

    root = tmp_path_factory.mktemp("offers-flat-tiers")
    generate(
        root / "landing", root / "oracle", accounts=120, months=8, seed=11, business="flat_tiers"
    )
    warehouse = root / "warehouse.duckdb"
    load_landing(
        root / "landing",
        Warehouse(warehouse, memory_limit="1GB"),
        "dbt-tests",
        business=load_business(DECLARATION),
    )
    dbt.run(
        ["build", "--select", "+account_offers", "--indirect-selection", "cautious"],
        root,
        warehouse=warehouse,
        dbt_vars={"reporting_currency": "JPY"},
    )
    return warehouse


def _catalogue(dbt, warehouse: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    plans = dbt.read(warehouse, "select * from intermediate.int_plans_laddered")
    limits = dbt.read(warehouse, "select * from staging.stg_billing__plan_limits")
    held = dbt.read(
        warehouse,
        "select distinct snapshot_date, account_id, product_id, plan_id "
        "from intermediate.int_account_holdings_snapshotted",
    )
    return plans.set_index("plan_id"), limits, held


def _monthly(plan: pd.Series, quantity: float) -> float:
    """A plan's monthly list price for `quantity` units (the rate is 1: prices are in the
    reporting currency on both demos)."""
    price = float(plan["list_price"])
    return price * quantity if plan["pricing_model"] == "per_seat" else price


def _period_matches(plan_period: object, period: object) -> bool:
    return bool(pd.isna(plan_period) or pd.isna(period) or plan_period == period)


def check_offers(dbt, warehouse: Path, currency: str) -> pd.DataFrame:
    """Every offer of account_offers against the price list; returns the offers."""
    plans, limits, held = _catalogue(dbt, warehouse)
    assert set(plans["currency"]) == {currency}  # list prices are reporting amounts here
    offers = dbt.read(warehouse, OFFERS_SQL)
    assert offers[["account_id", "snapshot_date"]].duplicated().sum() == 0
    assert (offers["reporting_currency"] == currency).all()
    active = offers[offers["is_active"].fillna(False).astype(bool)]
    inactive = offers.drop(active.index)
    assert (
        inactive["upsell_offer_kind"].isna().all() and inactive["cross_sell_plan_id"].isna().all()
    )
    # only positive offers
    assert (offers["upsell_offer_mrr"].dropna() > 0).all()
    assert (offers["cross_sell_offer_mrr"].dropna() > 0).all()
    assert (offers["upsell_offer_kind"].isna() == offers["upsell_offer_mrr"].isna()).all()

    for row in active.itertuples(index=False):
        core = plans.loc[row.core_plan_id]
        quantity = float(row.core_quantity)
        period = row.core_billing_period_months
        ladder = plans[
            (plans["product_id"] == core["product_id"])
            & (plans["tier_rank"] > core["tier_rank"])
            & np.array([_period_matches(p, period) for p in plans["billing_period_months"]])
        ]
        next_rank = ladder["tier_rank"].min() if len(ladder) else None
        if next_rank is None:
            assert pd.isna(row.next_tier_plan_id), row
        else:  # the next tier: the lowest higher rank sold on the account's period
            target = plans.loc[row.next_tier_plan_id]
            assert target["tier_rank"] == next_rank, row
            assert _period_matches(target["billing_period_months"], period), row

        kind = row.upsell_offer_kind
        if kind == "tier":
            target = plans.loc[row.upsell_plan_id]
            assert row.upsell_plan_id == row.next_tier_plan_id, row
            expected = _monthly(target, quantity) - _monthly(core, quantity)
            assert row.upsell_offer_mrr == pytest.approx(expected), row
        elif kind == "units":
            assert core["pricing_model"] == "per_seat" and pd.isna(row.upsell_plan_id), row
            assert row.upsell_offer_mrr == pytest.approx(row.upsell_units * core["list_price"])
        elif kind == "addon":
            target = plans.loc[row.upsell_plan_id]
            assert target["product_family"] == "addon", row
            assert _period_matches(target["billing_period_months"], period), row
            raises = limits[
                (limits["plan_id"] == row.upsell_plan_id)
                & (limits["metric"] == row.upsell_limit_metric)
            ]
            assert len(raises) == 1, row
            assert row.upsell_offer_mrr == pytest.approx(_monthly(target, row.upsell_units)), row
        else:
            assert kind is None or pd.isna(kind), row
            # no upsell: nothing above the core plan at its period, or nothing it would add
            if next_rank is not None:
                target = plans.loc[row.next_tier_plan_id]
                assert _monthly(target, quantity) <= _monthly(core, quantity), row
        if kind in ("units", "addon") or (kind == "tier" and not pd.isna(row.limit_usage)):
            to = row.upsell_limit_to
            assert row.upsell_limit_from is not None and (pd.isna(to) or to > row.upsell_limit_from)
        if kind in ("units", "addon"):  # a step that relieves the pressed limit
            assert row.limit_usage >= THRESHOLD * row.upsell_limit_from - 1e-9, row
            assert row.limit_usage < THRESHOLD * row.upsell_limit_to, row

        if not pd.isna(row.cross_sell_plan_id):
            target = plans.loc[row.cross_sell_plan_id]
            mine = held[
                (held["account_id"] == row.account_id)
                & (held["snapshot_date"] == row.snapshot_date)
            ]
            assert target["product_id"] not in set(mine["product_id"]), row
            assert _period_matches(target["billing_period_months"], period), row
            units = (
                quantity
                if (target["pricing_model"] == "per_seat" and core["pricing_model"] == "per_seat")
                else 1
            )
            assert row.cross_sell_units == units, row
            assert row.cross_sell_offer_mrr == pytest.approx(_monthly(target, units)), row
    return active


def test_offers_on_the_per_seat_catalogue(dbt, built_warehouse: Path) -> None:
    offers = check_offers(dbt, built_warehouse, "USD")
    kinds = offers["upsell_offer_kind"].value_counts()
    assert kinds.get("tier", 0) > 0.5 * len(offers)
    plans, _, _ = _catalogue(dbt, built_warehouse)
    top = offers["core_plan_id"].map(plans["is_top_tier"]).astype(bool)
    # the top tier is never offered a tier; more seats only when seats are pressed
    assert (offers.loc[top, "upsell_offer_kind"].fillna("none") != "tier").all()
    assert offers["cross_sell_plan_id"].notna().mean() > 0.5


def test_offers_on_the_flat_tier_catalogue(dbt, flat_tiers_warehouse: Path) -> None:
    offers = check_offers(dbt, flat_tiers_warehouse, "JPY")
    plans, _, held = _catalogue(dbt, flat_tiers_warehouse)
    assert set(plans["pricing_model"]) == {"flat", "per_seat"}
    kinds = offers["upsell_offer_kind"].value_counts()
    assert kinds.get("tier", 0) > 0 and kinds.get("addon", 0) > 0
    assert kinds.get("units", 0) == 0  # flat tiers have no units to add
    # tiers and packs at the account's own billing period, never another one
    for column in ("upsell_plan_id", "cross_sell_plan_id"):
        chosen = offers.dropna(subset=[column])
        periods = chosen[column].map(plans["billing_period_months"])
        assert (periods.to_numpy() == chosen["core_billing_period_months"].to_numpy()).all()
    # the top tier: no tier offer; with every add-on held and nothing pressed, no offer at all
    top = offers["core_plan_id"].map(plans["is_top_tier"]).astype(bool)
    assert top.any() and (offers.loc[top, "upsell_offer_kind"].fillna("none") != "tier").all()
    addons = set(plans.loc[plans["product_family"] == "addon", "product_id"])
    holds = held.groupby(["account_id", "snapshot_date"])["product_id"].agg(set)
    keys = list(zip(offers["account_id"], offers["snapshot_date"], strict=True))
    holds_all = np.array([addons <= holds.get(k, set()) for k in keys])
    everything = offers[top.to_numpy() & holds_all]
    assert everything["cross_sell_plan_id"].isna().all()
    # at most more packs of a held pack, for a limit pressed at the threshold
    assert (everything["upsell_offer_kind"].dropna() == "addon").all()
    assert (
        (everything["limit_usage"] >= THRESHOLD * everything["upsell_limit_from"])
        .where(everything["upsell_offer_kind"].notna(), True)
        .all()
    )
