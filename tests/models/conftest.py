"""Tiny synthetic `marts.account_features` frames with a planted expansion signal: the
columns of marts.account_snapshots plus the usage features of a test business."""

from __future__ import annotations

import os

# OpenMP threads that spin while waiting slow LightGBM tenfold on a busy 2-CPU runner.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.business import Business, UsageMetric
from models.params import Params, load_params
from models.train import TrainedModel, train_model

AS_OF = date(2026, 2, 15)

# A business of its own (no demo metric): one metric per aggregation, three with a limit.
BUSINESS = Business(
    usage_metrics=[
        UsageMetric(
            name="widget_users",
            label={"en": "widget users", "ja": "ウィジェット利用者"},
            unit={"en": "users", "ja": "人"},
            aggregation="distinct",
            limit_period="day",
        ),
        UsageMetric(
            name="widget_calls",
            label="widget calls",
            unit="calls",
            aggregation="sum",
            limit_period="month",
        ),
        UsageMetric(
            name="widget_gb",
            label="widget storage",
            unit="GB",
            aggregation="level",
            limit_period="held",
        ),
        UsageMetric(name="widget_features", label="widget features", aggregation="distinct"),
    ]
)
# The stats of a metric's feature family by aggregation (dbt: usage_feature_stats()).
STATS = {
    "sum": ["7d", "30d", "90d", "trend_28d", "active_days_30d", "days_since_use"],
    "distinct": ["7d", "30d", "90d", "trend_28d", "days_since_use"],
    "level": ["latest", "30d", "trend_28d"],
}


def usage_columns(business: Business = BUSINESS) -> list[str]:
    """The usage feature columns marts.account_features has for `business`."""
    return [
        f"{m.name}__{stat}"
        for m in business.usage_metrics
        for stat in [*STATS[m.aggregation], *(["utilization"] if m.limit_period else [])]
    ]


def month_ends(n: int, last: str = "2025-12-31") -> list[date]:
    """The `n` month-end dates up to `last`."""
    return [d.date() for d in pd.date_range(end=last, periods=n, freq="ME")]


def planted_probabilities(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Planted P(upsell) and P(cross_sell) of each row."""
    seats = frame["per_unit_limit_utilization"].to_numpy(dtype=float)
    promoter = frame["is_promoter_90d"].astype("boolean").fillna(False).to_numpy(dtype=float)
    renewal = frame["days_to_renewal"].astype("float64").to_numpy()
    companion = frame["companion_products_not_held"].astype("float64").to_numpy()
    z_up = -3.0 + 5.0 * (seats - 0.5) + 1.2 * promoter + 0.8 * (renewal < 60)
    z_cross = -3.2 + 1.5 * (companion > 0) + 0.02 * frame["widget_features__30d"].to_numpy()
    return 1 / (1 + np.exp(-z_up)), 1 / (1 + np.exp(-z_cross))


def synthetic_snapshots(
    n_accounts: int = 30, n_months: int = 18, seed: int = 0, as_of: date = AS_OF
) -> pd.DataFrame:
    """Month-end snapshots plus an as_of snapshot for `n_accounts` accounts (all columns of
    marts.account_features for BUSINESS)."""
    rng = np.random.default_rng(seed)
    dates = [*month_ends(n_months), as_of]
    rows = len(dates) * n_accounts
    account = np.tile([f"A{i:04d}" for i in range(n_accounts)], len(dates))
    snap = np.repeat(dates, n_accounts)
    segment = rng.choice(["smb", "mid_market", "enterprise"], rows, p=[0.6, 0.3, 0.1])
    quantity = rng.integers(5, 200, rows)
    seats = np.clip(rng.beta(4, 3, rows) * 1.1, 0, 1.2)
    mrr = np.round(quantity * rng.uniform(20, 60, rows), 2)
    renewal = rng.integers(0, 365, rows)
    term = rng.choice([1, 12, 24], rows, p=[0.3, 0.6, 0.1])
    nps = rng.integers(0, 11, rows).astype(float)
    has_nps = rng.random(rows) < 0.6
    nps[~has_nps] = np.nan
    promoter = pd.array(np.where(has_nps, nps >= 9, False), dtype="boolean")
    promoter[~has_nps] = pd.NA
    companion = rng.integers(0, 3, rows)
    frame = pd.DataFrame(
        {
            "account_id": account,
            "snapshot_date": snap,
            "is_active": True,
            "segment": segment,
            "industry": rng.choice(["software", "retail", "finance", None], rows),
            "country": rng.choice(["US", "DE", "JP", "FR"], rows),
            "billing_currency": rng.choice(["USD", "EUR", "JPY"], rows),
            "tenure_days": pd.array(rng.integers(30, 2000, rows), dtype="Int64"),
            "mrr": mrr,
            "mrr_90d_ago": mrr * rng.uniform(0.8, 1.1, rows),
            "mrr_change_90d": mrr * rng.uniform(-0.1, 0.2, rows),
            "products_held": rng.integers(1, 4, rows),
            "companion_products_not_held": companion,
            "top_companion_product_id": np.where(companion > 0, "P-ANL", None),
            "top_companion_product_name": np.where(companion > 0, "Analytics", None),
            "core_tier_rank": rng.integers(1, 4, rows),
            "is_top_tier": rng.random(rows) < 0.2,
            "core_quantity": quantity,
            "core_term_months": term,
            "core_billing_period_months": np.where(term == 1, 1, rng.choice([1, 12], rows)),
            "is_monthly_term": term == 1,
            "core_pricing_model": rng.choice(["per_seat", "flat"], rows, p=[0.8, 0.2]),
            "per_unit_limit_utilization": seats,
            "days_to_renewal": renewal,
            "months_to_renewal": renewal // 30,
            "tickets_open": rng.integers(0, 4, rows),
            "urgent_tickets_open": (rng.random(rows) < 0.05).astype(int),
            "tickets_90d": rng.integers(0, 10, rows),
            "nps_latest": nps,
            "nps_previous": np.where(has_nps, rng.integers(0, 11, rows), np.nan),
            "days_since_nps": np.where(has_nps, rng.integers(1, 300, rows), np.nan),
            "is_promoter_90d": promoter,
            "is_detractor_90d": pd.Series(np.where(has_nps, nps <= 6, None), dtype=object),
            "activities_30d": rng.integers(0, 10, rows),
            "meetings_90d": rng.integers(0, 4, rows),
            "days_since_last_activity": rng.integers(0, 120, rows),
            "invoices_paid_late_365d": rng.integers(0, 3, rows),
            "invoices_overdue_open": (rng.random(rows) < 0.05).astype(int),
            "opportunities_open": rng.integers(0, 2, rows),
            "opportunities_won_365d": rng.integers(0, 3, rows),
            "days_since_last_expansion": np.where(
                rng.random(rows) < 0.5, rng.integers(1, 700, rows), np.nan
            ),
            "days_since_last_contraction": np.where(
                rng.random(rows) < 0.2, rng.integers(1, 700, rows), np.nan
            ),
            "next_tier_plan_name": rng.choice(["Growth", "Scale", None], rows),
        }
    )
    calls_30d = rng.integers(0, 100000, rows).astype(float)
    features_30d = rng.uniform(1, 40, rows)
    storage = rng.uniform(1, 500, rows)
    usage = {
        "widget_users__7d": seats * quantity * rng.uniform(0.9, 1.1, rows),
        "widget_users__30d": seats * quantity,
        "widget_users__90d": seats * quantity * rng.uniform(0.8, 1.0, rows),
        "widget_users__trend_28d": rng.normal(0.02, 0.1, rows),
        "widget_users__days_since_use": rng.integers(0, 3, rows).astype(float),
        "widget_users__utilization": np.clip(seats + rng.normal(0, 0.03, rows), 0, None),
        "widget_calls__7d": calls_30d * rng.uniform(0.2, 0.3, rows),
        "widget_calls__30d": calls_30d,
        "widget_calls__90d": calls_30d * rng.uniform(2.5, 3.5, rows),
        "widget_calls__trend_28d": rng.normal(0.0, 0.2, rows),
        "widget_calls__active_days_30d": rng.integers(0, 31, rows).astype(float),
        "widget_calls__days_since_use": np.where(
            calls_30d > 5000, rng.integers(0, 10, rows), np.nan
        ),
        "widget_calls__utilization": rng.uniform(0, 1, rows),
        "widget_gb__latest": storage,
        "widget_gb__30d": storage * rng.uniform(0.9, 1.0, rows),
        "widget_gb__trend_28d": rng.normal(0.01, 0.05, rows),
        "widget_gb__utilization": rng.uniform(0, 1, rows),
        "widget_features__7d": features_30d * rng.uniform(0.9, 1.1, rows),
        "widget_features__30d": features_30d,
        "widget_features__90d": features_30d * rng.uniform(0.9, 1.1, rows),
        "widget_features__trend_28d": rng.normal(0.0, 0.1, rows),
        "widget_features__days_since_use": rng.integers(0, 5, rows).astype(float),
    }
    assert list(usage) == usage_columns()
    frame = pd.concat([frame, pd.DataFrame(usage, index=frame.index)], axis=1)
    limited = frame[[f"{m}__utilization" for m in BUSINESS.limited_metric_names]]
    frame["max_limit_utilization"] = limited.max(axis=1)
    frame["binding_limit_metric"] = [
        c.removesuffix("__utilization") for c in limited.idxmax(axis=1)
    ]
    p_up, p_cross = planted_probabilities(frame)
    upsell = rng.random(rows) < p_up
    cross = rng.random(rows) < p_cross
    complete = pd.to_datetime(frame["snapshot_date"]) + pd.Timedelta(days=90) <= pd.Timestamp(as_of)
    frame["label_expansion"] = upsell | cross
    frame["label_upsell"] = upsell
    frame["label_cross_sell"] = cross
    frame["expansion_mrr_next"] = np.where(upsell | cross, mrr * rng.uniform(0.1, 0.5, rows), 0.0)
    frame["is_label_complete"] = complete.to_numpy()
    for col in ("label_expansion", "label_upsell", "label_cross_sell"):
        frame[col] = pd.array(frame[col], dtype="boolean")
        frame.loc[~complete.to_numpy(), col] = pd.NA
    frame.loc[~complete.to_numpy(), "expansion_mrr_next"] = np.nan
    return frame.assign(**offer_columns(frame, seed))


def offer_columns(frame: pd.DataFrame, seed: int = 0) -> dict[str, object]:
    """The offer columns of account_snapshots (dbt: account_offers) for `frame`: a next tier
    for most accounts, more seats for some on the top tier, a cross-sell for those with a
    companion (drawn apart from the other columns, so adding them changed none)."""
    rng = np.random.default_rng(seed + 1000)
    rows = len(frame)
    top = frame["is_top_tier"].to_numpy(dtype=bool)
    units = top & (rng.random(rows) < 0.5)
    kind = np.where(units, "units", np.where(top, None, "tier"))
    quantity = frame["core_quantity"].to_numpy(dtype=float)
    companion = frame["top_companion_product_name"].notna().to_numpy()
    return {
        "upsell_offer_kind": kind,
        "upsell_plan_name": np.where(kind == "tier", "Scale", None),
        "upsell_units": pd.array(np.where(units, rng.integers(1, 10, rows), pd.NA), dtype="Int64"),
        "upsell_offer_mrr": np.where(
            units, rng.integers(1, 10, rows) * 30.0, np.where(top, np.nan, quantity * 25.0)
        ),
        "upsell_limit_metric": np.where(kind == "tier", "widget_gb", None),
        "upsell_limit_from": np.where(kind == "tier", 100.0, np.nan),
        "upsell_limit_to": np.where(kind == "tier", 1000.0, np.nan),
        "cross_sell_product_id": np.where(companion, "P-ANL", None),
        "cross_sell_product_name": np.where(companion, "Analytics", None),
        "cross_sell_plan_id": np.where(companion, "plan-anl", None),
        "cross_sell_plan_name": np.where(companion, "Analytics", None),
        "cross_sell_units": pd.array(np.where(companion, quantity, pd.NA), dtype="Int64"),
        "cross_sell_offer_mrr": np.where(companion, quantity * 15.0, np.nan),
    }


def fast_params(params: Params) -> Params:
    """Params with small-data settings (tests run on a few hundred rows): smaller LightGBM
    leaves, and one validation date per split (the split tests count dates with it)."""
    lgbm = params.lightgbm.model_copy(
        update={
            "min_data_in_leaf": 20,
            "min_data_per_group": 10,
            "num_leaves": 7,
            "learning_rate": 0.1,
            "max_rounds": 200,
            "early_stopping_rounds": 20,
            "num_threads": 1,  # the determinism test runs the configured thread count
        }
    )
    backtest = params.backtest.model_copy(update={"validation_dates": 1})
    return params.model_copy(update={"lightgbm": lgbm, "backtest": backtest})


@pytest.fixture(scope="session")
def business() -> Business:
    return BUSINESS


@pytest.fixture(scope="session")
def params() -> Params:
    """params.yaml with the test business's usage features, small-data settings."""
    return fast_params(load_params().with_usage_features(BUSINESS, usage_columns()))


@pytest.fixture(scope="session")
def make_snapshots() -> Callable[..., pd.DataFrame]:
    """Factory: synthetic_snapshots(n_accounts, n_months, seed, as_of)."""
    return synthetic_snapshots


@pytest.fixture(scope="session")
def true_probabilities() -> Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray]]:
    return planted_probabilities


@pytest.fixture(scope="session")
def as_of() -> date:
    return AS_OF


@pytest.fixture(scope="session")
def snapshots() -> pd.DataFrame:
    """30 accounts x 18 month-ends (+ the as_of snapshot); do not mutate."""
    return synthetic_snapshots()


@pytest.fixture(scope="session")
def trained(snapshots: pd.DataFrame, params: Params) -> TrainedModel:
    """A model trained (with backtest) on `snapshots`; do not mutate."""
    return train_model(snapshots, params)


@pytest.fixture(scope="session")
def owners() -> pd.Series:
    """account_id -> owner for the synthetic accounts: three owners, one account unowned."""
    ids = [f"A{i:04d}" for i in range(30)]
    names = [None if i == 29 else ["Ana", "Ben", "Cho"][i % 3] for i in range(30)]
    return pd.Series(names, index=ids, dtype=object)
