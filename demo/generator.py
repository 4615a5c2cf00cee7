"""Demo data generator: realistic CRM, billing and product-usage extracts plus a truth oracle.

The simulation steps through the calendar months of the data window with all accounts as numpy
vectors. Each account carries latent states (adoption, demand growth, health and an unobserved
buying propensity) that evolve month to month as AR(1) processes. At each month end the
observable state (seat utilisation, usage against plan limits, renewal timing, NPS, tickets,
breadth of adoption, usage trend) plus the latent propensity gives the true monthly hazards of
upsell and cross-sell for the following month; events are drawn from those hazards. Usage rows
are written month by month, so memory does not grow with the number of months.

Outputs follow `flows.ingest.contract` exactly:
- `landing/<source>/<table>/<table>_<YYYYMMDD>.csv` for crm and billing tables,
- `landing/usage/usage_daily/usage_daily_<YYYY-MM>.parquet`, one file per month,
- `oracle/expansion_oracle.parquet` with the true probabilities and `oracle/mrr_monthly.parquet`
  with every account's MRR at each month end (never read by the pipeline).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from demo import catalog as cat
from demo import flat_tiers
from demo.common import (
    DAY,
    F64,
    I64,
    LONG_AGO,
    NEVER,
    USAGE_CHUNK,
    USAGE_SCHEMA,
    B,
    Calendar,
    GenerationSummary,
    Rows,
    Subs,
    anniversary_in_month,
    extract_table,
    ids,
    month_index,
    next_anniversary,
    oracle_table,
    pick,
    plan_limits_table,
    run,
    sigmoid,
)
from demo.crm import CrmDrivers, crm_month
from demo.extracts import CrmNames, Tables, build_tables, mrr_truth

# --- tuning knobs (hazard model) -------------------------------------------------------------
UPSELL_INTERCEPT = -7.0
CROSS_INTERCEPT = -6.3
LATENT_SD = 0.75  # stationary sd of the unobserved propensity
LATENT_RHO = 0.9
# logit weights (upsell, cross-sell) of each signal at the snapshot; *_latent are never exported
SIGNAL_WEIGHTS: dict[str, tuple[float, float]] = {
    "seat_utilisation": (2.2, 0.0),  # 0 below 75 % of seats used, 1 at 95 %, up to 1.25
    "near_plan_limit": (1.8, 0.0),  # 0 below 70 % of the storage/api limit, 1 at 95 %
    "renewal_within_90d": (0.8, 0.7),
    "promoter_nps_90d": (1.0, 1.0),
    "detractor_nps_90d": (-0.6, -0.6),
    "qbr_90d": (0.5, 0.5),
    "feature_request_90d": (0.5, 0.5),
    "open_urgent_ticket": (-2.0, -2.0),  # "not now"
    "breadth": (1.2, 1.6),  # features used / 30, centred
    "user_growth_3m": (4.0, 2.0),  # relative change of active users, clipped to [-0.2, 0.3]
    "recent_upsell_60d": (-1.2, 0.0),
    "recent_cross_sell_90d": (0.0, -1.0),
    "companion_gap": (0.0, 1.6),  # holds an add-on whose usual companion it lacks
    "segment": (0.2, 0.2),  # 0 smb, 1 mid_market, 2 enterprise
    "health_latent": (0.3, 0.3),
    "budget_season_latent": (0.6, 0.6),  # two months before the fiscal year starts
    "propensity_latent": (1.0, 0.8),  # AR(1) buying propensity, sd LATENT_SD
}
API_THROTTLE = 1.02  # api calls are throttled just above the plan's monthly limit

# --- the simulation ------------------------------------------------------------------------------

_PLAN_PRICE = np.array([p.list_price_usd for p in cat.PLANS])
_CORE_STORAGE = np.array(
    [np.nan] + [cat.PLANS[i].storage_limit_gb or np.inf for i in cat.PLAN_INDEX[0]]
)
_CORE_API = np.array([np.nan] + [cat.PLANS[i].api_calls_limit or np.inf for i in cat.PLAN_INDEX[0]])
_PLAN_OF = np.full((len(cat.PRODUCTS), 3), -1, np.int64)
for _p, _plans in enumerate(cat.PLAN_INDEX):
    _PLAN_OF[_p, : len(_plans)] = _plans
_N_TIERS = np.array([len(p) for p in cat.PLAN_INDEX])
_COMPANION_COL = np.array([cat.ADDONS.index(cat.COMPANION[p]) for p in cat.ADDONS])


class _World:
    """All accounts' state plus everything recorded so far."""

    def __init__(self, cal: Calendar, n: int, seed: int) -> None:
        self.cal = cal
        self.n = n
        self.rng = np.random.Generator(np.random.PCG64([seed, 1]))  # simulation
        self.rng_usage = np.random.Generator(np.random.PCG64([seed, 2]))  # usage noise
        self.rng_crm = np.random.Generator(np.random.PCG64([seed, 3]))  # crm noise
        self.rng_out = np.random.Generator(np.random.PCG64([seed, 4]))  # extract details
        self.account_ids = ids("0015g000", np.arange(n), 7)
        self._init_accounts(np.random.Generator(np.random.PCG64([seed, 0])))

        self.subs = Subs(max(16, n * 3))
        self.changes = Rows("sub", "ts", "plan", "qty", "kind")  # kind 0 initial 1 up 2 down
        self.events = Rows("acc", "day", "ts", "kind", "sub", "delta_mrr")  # kind 1 up 2 cross
        self.renewals = Rows("acc", "sub", "ts", "won", "mrr")
        self.new_business = Rows("acc", "sub", "ts", "mrr")
        self.lost_opps = Rows("acc", "kind", "created", "closed", "mrr")
        self.tickets = Rows("acc", "priority", "category", "opened", "closed", "updated")
        self.nps = Rows("acc", "contact", "score", "ts")
        self.activities = Rows("acc", "kind", "ts")
        self.snapshots = Rows("acc", "day", "p_up", "p_cross")
        self.urgent_acc = np.zeros(0, np.int64)
        self.urgent_close = np.zeros(0, np.int64)

        self.status = np.zeros(n, np.int8)  # 0 not started, 1 active, 2 churned
        self.svc_start = np.full(n, NEVER, np.int64)  # first day of the current service
        self.svc_end = np.full(n, NEVER, np.int64)  # first day without service
        self.churn_month = np.full(n, -(1 << 20), np.int64)
        self.core_sub = np.full(n, -1, np.int64)
        self.addon_sub = np.full((n, len(cat.ADDONS)), -1, np.int64)
        self.addon_qty = np.zeros((n, len(cat.ADDONS)), np.int64)
        self.addon_tier = np.ones((n, len(cat.ADDONS)), np.int64)
        self.last_promoter = np.full(n, LONG_AGO, np.int64)
        self.last_detractor = np.full(n, LONG_AGO, np.int64)
        self.last_qbr = np.full(n, LONG_AGO, np.int64)
        self.last_feature_req = np.full(n, LONG_AGO, np.int64)
        self.last_upsell = np.full(n, LONG_AGO, np.int64)
        self.last_cross = np.full(n, LONG_AGO, np.int64)
        self.au_hist = np.full((n, cal.months), np.nan)
        self.h_hist = np.zeros((n, cal.months))
        self.p_up = np.zeros(n)
        self.p_cross = np.zeros(n)
        self.s_util = np.zeros(n)
        self.s_limit = np.zeros(n)
        self.util = np.zeros(n)
        self.seat_change_day = np.full(n, NEVER, np.int64)
        self.seats_before = self.seats.copy()

    # --- accounts ---------------------------------------------------------------------------
    def _init_accounts(self, rng: np.random.Generator) -> None:
        n, cal = self.n, self.cal
        self.segment = rng.choice(3, n, p=cat.SEGMENT_SHARE).astype(np.int64)
        shares = np.array([c[1] for c in cat.COUNTRIES])
        self.country = rng.choice(len(cat.COUNTRIES), n, p=shares / shares.sum()).astype(np.int64)
        self.currency = np.array([c[2] for c in cat.COUNTRIES])[self.country]
        self.industry = rng.integers(0, len(cat.INDUSTRIES), n)
        self.industry_null = rng.random(n) < 0.03
        lo = np.array([r[0] for r in cat.EMPLOYEES_RANGE])[self.segment]
        hi = np.array([r[1] for r in cat.EMPLOYEES_RANGE])[self.segment]
        self.employees = np.round(np.exp(rng.uniform(np.log(lo), np.log(hi)))).astype(np.int64)
        self.employees_null = rng.random(n) < 0.05
        owner_seg = np.array([o[2] for o in cat.OWNERS])
        self.owner = np.zeros(n, np.int64)
        for s in range(3):
            pool = np.flatnonzero(owner_seg == s)
            m = self.segment == s
            self.owner[m] = rng.choice(pool, int(m.sum()))
        self.owner_null = (self.segment == 0) & (rng.random(n) < 0.04)
        self.name_parts = rng.integers(0, 1 << 30, (n, 3))
        self.suffix = self.country  # legal suffix by country

        lo = np.array([r[0] for r in cat.SEATS_RANGE])[self.segment]
        hi = np.array([r[1] for r in cat.SEATS_RANGE])[self.segment]
        self.seats = np.round(np.exp(rng.uniform(np.log(lo), np.log(hi)))).astype(np.int64)
        mix = np.array(cat.TIER_MIX)[self.segment]
        self.tier = 1 + (rng.random(n)[:, None] > np.cumsum(mix, axis=1)).sum(axis=1)
        self.tier = np.minimum(self.tier, cat.CORE_TIERS).astype(np.int64)

        self.pre = rng.random(n) < 0.6
        tenure_days = np.round(np.exp(rng.uniform(np.log(20), np.log(5 * 365), n))).astype(np.int64)
        window_days = cal.end_day - cal.window_start + 1
        new_day = cal.window_start + rng.integers(0, window_days, n)
        self.first_day = np.where(self.pre, cal.window_start - tenure_days, new_day)
        self.first_ts = self.first_day * DAY + rng.integers(8 * 3600, 18 * 3600, n)
        self.crm_created_ts = self.first_ts - rng.integers(7 * DAY, 180 * DAY, n)
        self.fiscal_month = rng.integers(0, 12, n)
        self.high_touch = (self.segment == 2) | ((self.segment == 1) & (rng.random(n) < 0.4))
        self.phase = rng.integers(0, 3, n)  # survey / QBR quarter phase
        self.annual = rng.random(n) < np.array([0.3, 0.45, 0.65])[self.segment]

        # latent states
        self.mu_a = rng.normal(0.0, 0.6, n)
        self.a = np.where(self.pre, self.mu_a + rng.normal(0, 0.4, n), self.mu_a - 1.2)
        self.mu_g = rng.normal(0.008, 0.012, n)
        self.g = self.mu_g.copy()
        self.w = rng.normal(0.0, 0.6, n)
        self.z = rng.normal(0.0, LATENT_SD, n)
        self.weekend = rng.uniform(0.05, 0.35, n)
        self.feature_base = rng.normal(0.0, 0.5, n)
        self.storage_rate = rng.uniform(0.004, 0.035, n)
        util0 = np.where(self.pre, rng.beta(5.0, 2.2, n), rng.uniform(0.35, 0.7, n))
        self.demand = util0 * self.seats / self._frac()
        storage_limit = _CORE_STORAGE[self.tier]
        self.storage = storage_limit * np.where(
            self.pre, rng.beta(2.0, 3.0, n), rng.uniform(0.02, 0.15, n)
        )
        api_limit = np.where(np.isinf(_CORE_API[self.tier]), 25_000_000.0, _CORE_API[self.tier])
        api_ratio = np.exp(rng.normal(np.log(0.3), 0.7, n)) * (rng.random(n) > 0.2)
        self.api_per_user = api_ratio * api_limit / np.maximum(util0 * self.seats, 1.0)

        # initial add-ons: companions often held together
        seg = self.segment
        r = rng.random((n, 4))
        hold = np.zeros((n, 4), bool)
        hold[:, 0] = r[:, 0] < np.where(self.pre, np.array([0.15, 0.25, 0.35])[seg], 0.07)
        hold[:, 1] = r[:, 1] < np.where(self.pre, np.array([0.12, 0.2, 0.3])[seg], 0.05)
        hold[:, 2] = self.pre & (r[:, 2] < np.where(hold[:, 0], 0.55, 0.07))
        hold[:, 3] = self.pre & (r[:, 3] < np.where(hold[:, 1], 0.5, 0.05))
        self.init_addons = hold
        self.init_addon_day = np.where(
            self.pre[:, None],
            self.first_day[:, None]
            + (rng.random((n, 4)) * (cal.window_start - self.first_day)[:, None]).astype(np.int64),
            self.first_day[:, None],
        )
        self.init_addon_qty = np.maximum(
            1, np.round(self.seats[:, None] * rng.uniform(0.2, 0.8, (n, 4)))
        ).astype(np.int64)
        self.init_addon_tier = 1 + ((rng.random((n, 4)) < 0.3) & (_N_TIERS[1:] > 1)).astype(
            np.int64
        )
        self.history_upsell = self.pre & (tenure_days > 270) & (rng.random(n) < 0.35)
        self.history_frac = rng.uniform(0.5, 0.85, n)
        self.history_day = self.first_day + (
            rng.uniform(0.2, 0.95, n) * (cal.window_start - self.first_day)
        ).astype(np.int64)

        n_contacts = rng.integers(np.array([2, 3, 5])[seg], np.array([5, 8, 11])[seg]).astype(
            np.int64
        )
        self.contact_count = n_contacts
        self.contact_offset = np.concatenate([[0], np.cumsum(n_contacts)[:-1]]).astype(np.int64)

    def _frac(self) -> F64:
        """Share of demand users that are actually active, from adoption."""
        return 0.5 + 0.45 * sigmoid(1.5 * self.a)

    def health(self) -> F64:
        return np.asarray(0.6 * self.a + self.w, dtype=np.float64)

    def features(self) -> F64:
        n_addons = (self.addon_sub >= 0).sum(axis=1)
        f = 3 + 20 * sigmoid(0.9 * self.a + self.feature_base) + 2 * n_addons
        return np.asarray(np.clip(f, 1, 30), dtype=np.float64)

    def expected_users(self) -> F64:
        return np.asarray(np.minimum(self.seats, self.demand * self._frac()), dtype=np.float64)

    # --- subscriptions ----------------------------------------------------------------------
    def _discount(self, acc: I64) -> F64:
        seg = self.segment[acc]
        hi = np.array([0.1, 0.18, 0.3])[seg]
        d = self.rng.uniform(0.0, 1.0, len(acc)) * hi
        return np.where((seg == 0) & (self.rng.random(len(acc)) < 0.6), 0.0, np.round(d, 2))

    def _new_subs(
        self, acc: I64, prod: I64, start_ts: I64, plan: I64, qty: I64, period: I64
    ) -> I64:
        idx = self.subs.add(acc, prod, period, start_ts, self._discount(acc))
        self.changes.add(sub=idx, ts=start_ts, plan=plan, qty=qty, kind=0)
        return idx

    def _period_for(self, acc: I64) -> I64:
        same = self.rng.random(len(acc)) < 0.8
        annual = np.where(same, self.annual[acc], self.rng.random(len(acc)) < 0.4)
        return np.where(annual, 12, 1).astype(np.int64)

    def _mrr(self, sub: I64, plan: I64, qty: I64) -> F64:
        return np.asarray(qty * _PLAN_PRICE[plan] * (1 - self.subs.discount[sub]), np.float64)

    def start_accounts(self, acc: I64) -> None:
        """First subscriptions of accounts (core plus initial add-ons), with their history."""
        if len(acc) == 0:
            return
        core_plan = _PLAN_OF[0, self.tier[acc] - 1]
        hist = self.history_upsell[acc]
        qty0 = np.where(
            hist,
            np.maximum(1, np.round(self.seats[acc] * self.history_frac[acc])).astype(np.int64),
            self.seats[acc],
        )
        period = np.where(self.annual[acc], 12, 1).astype(np.int64)
        sub = self._new_subs(acc, np.zeros_like(acc), self.first_ts[acc], core_plan, qty0, period)
        self.core_sub[acc] = sub
        self.new_business.add(
            acc=acc, sub=sub, ts=self.first_ts[acc], mrr=self._mrr(sub, core_plan, qty0)
        )
        h = np.flatnonzero(hist)
        if len(h):
            ts = self.history_day[acc[h]] * DAY + self.rng.integers(8 * 3600, 18 * 3600, len(h))
            self.changes.add(sub=sub[h], ts=ts, plan=core_plan[h], qty=self.seats[acc[h]], kind=1)
            delta = self._mrr(sub[h], core_plan[h], self.seats[acc[h]] - qty0[h])
            self.events.add(acc=acc[h], day=ts // DAY, ts=ts, kind=1, sub=sub[h], delta_mrr=delta)
        for col, prod in enumerate(cat.ADDONS):
            a = acc[self.init_addons[acc, col]]
            if len(a) == 0:
                continue
            day = self.init_addon_day[a, col]
            ts = np.maximum(
                day * DAY + self.rng.integers(8 * 3600, 18 * 3600, len(a)), self.first_ts[a]
            )
            plan = _PLAN_OF[prod, self.init_addon_tier[a, col] - 1]
            qty = self.init_addon_qty[a, col]
            s = self._new_subs(a, np.full_like(a, prod), ts, plan, qty, self._period_for(a))
            self.addon_sub[a, col] = s
            self.addon_qty[a, col] = qty
            self.addon_tier[a, col] = self.init_addon_tier[a, col]
            later = day > self.first_day[a]
            if later.any():  # bought after the core product: a cross-sell before the window
                self.events.add(
                    acc=a[later], day=ts[later] // DAY, ts=ts[later], kind=2, sub=s[later],
                    delta_mrr=self._mrr(s[later], plan[later], qty[later]),
                )  # fmt: skip
        self.status[acc] = 1
        self.svc_start[acc] = self.first_day[acc]
        self.svc_end[acc] = NEVER

    # --- hazards ------------------------------------------------------------------------------
    def hazards(self, ref_day: int, m: int) -> None:
        """True monthly hazards for the month after `ref_day`, from the state at `ref_day`."""
        active = (self.status == 1) & (self.svc_start <= ref_day)
        seats = np.maximum(self.seats, 1)
        au = self.expected_users()
        util = au / seats
        s_util = np.clip((util - 0.75) / 0.2, 0.0, 1.25)
        storage_ratio = self.storage / _CORE_STORAGE[self.tier]
        api_ratio = np.minimum(self.api_per_user * au / _CORE_API[self.tier], API_THROTTLE)
        near = np.where(self.tier < cat.CORE_TIERS, np.maximum(storage_ratio, api_ratio), 0.0)
        s_limit = np.clip((near - 0.7) / 0.25, 0.0, 1.2)
        core_start = self.subs.start_ts[np.maximum(self.core_sub, 0)] // DAY
        renew_days = next_anniversary(core_start, np.full(self.n, ref_day), 12) - ref_day
        renew90 = (renew_days <= 90).astype(float)
        promoter = (ref_day - self.last_promoter <= 90).astype(float)
        detractor = (ref_day - self.last_detractor <= 90).astype(float)
        qbr = (ref_day - self.last_qbr <= 90).astype(float)
        feature_req = (ref_day - self.last_feature_req <= 90).astype(float)
        recent_up = (ref_day - self.last_upsell <= 60).astype(float)
        recent_cross = (ref_day - self.last_cross <= 90).astype(float)
        breadth = self.features() / 30.0
        growth = np.zeros(self.n)
        if m >= 3:
            prev = self.au_hist[:, m - 3]
            ok = np.isfinite(prev) & (prev > 0)
            growth[ok] = au[ok] / prev[ok] - 1.0
        growth = np.clip(growth, -0.2, 0.3)
        ref_ts = (ref_day + 1) * DAY - 1
        urgent = np.zeros(self.n)
        still = (self.urgent_close > ref_ts) | (self.urgent_close < 0)
        np.maximum.at(urgent, self.urgent_acc[still], 1.0)
        next_month = month_index(ref_day + 1)
        budget = (((self.fiscal_month - next_month) % 12) <= 2).astype(float)
        held = self.addon_sub >= 0
        gap = (held & ~held[:, _COMPANION_COL]).any(axis=1).astype(float)
        h = self.health()

        signals = {
            "seat_utilisation": s_util,
            "near_plan_limit": s_limit,
            "renewal_within_90d": renew90,
            "promoter_nps_90d": promoter,
            "detractor_nps_90d": detractor,
            "qbr_90d": qbr,
            "feature_request_90d": feature_req,
            "open_urgent_ticket": urgent,
            "breadth": breadth - 0.5,
            "user_growth_3m": growth,
            "recent_upsell_60d": recent_up,
            "recent_cross_sell_90d": recent_cross,
            "companion_gap": gap,
            "segment": self.segment.astype(float),
            "health_latent": h,
            "budget_season_latent": budget,
            "propensity_latent": self.z,
        }
        up = np.full(self.n, UPSELL_INTERCEPT)
        cross = np.full(self.n, CROSS_INTERCEPT)
        for name, (w_up, w_cross) in SIGNAL_WEIGHTS.items():
            up += w_up * signals[name]
            cross += w_cross * signals[name]
        self.p_up = np.where(active, sigmoid(up), 0.0)
        self.p_cross = np.where(active & ~held.all(axis=1), sigmoid(cross), 0.0)
        self.s_util, self.s_limit, self.util = s_util, s_limit, util
        self.detractor_now, self.urgent_now = detractor, urgent

    # --- one month ------------------------------------------------------------------------------
    def step(self, m: int) -> None:
        cal, rng = self.cal, self.rng
        ms, ml = int(cal.start[m]), int(cal.last[m])
        month = cal.first_month + m

        # latent states evolve (adoption waits for the first subscription: onboarding ramp)
        a = self.mu_a + 0.85 * (self.a - self.mu_a) + rng.normal(0, 0.25, self.n)
        self.a = np.where(self.status == 0, self.a, a)
        self.g = self.mu_g + 0.7 * (self.g - self.mu_g) + rng.normal(0, 0.01, self.n)
        self.w = 0.8 * self.w + rng.normal(0, 0.36, self.n)
        self.z = LATENT_RHO * self.z + rng.normal(0, LATENT_SD * np.sqrt(1 - LATENT_RHO**2), self.n)
        on = self.status == 1
        self.storage_prev = self.storage.copy()
        self.demand = np.where(on, self.demand * np.exp(self.g), self.demand)
        grown = self.storage * (1 + self.storage_rate + 0.5 * np.maximum(self.g, 0))
        cap = 1.05 * _CORE_STORAGE[self.tier]
        self.storage = np.where(on, np.minimum(grown, np.maximum(cap, self.storage)), self.storage)
        self.seats_before = self.seats.copy()
        self.seat_change_day = np.full(self.n, NEVER, np.int64)

        active0 = (self.status == 1) & (self.svc_start < ms)
        self._churn(m, ms, ml, month, active0)
        stay = active0 & (self.status == 1)
        self._expand(ms, ml, stay)
        self._reactivate(m, ms, ml)
        self.start_accounts(np.flatnonzero((self.status == 0) & (self.first_day <= ml)))
        self.h_hist[:, m] = self.health()

    def _rand_day(self, ms: int, ml: int, k: int) -> tuple[I64, I64]:
        day = ms + self.rng.integers(0, ml - ms + 1, k)
        return day, day * DAY + self.rng.integers(7 * 3600, 19 * 3600, k)

    def _churn(self, m: int, ms: int, ml: int, month: int, active0: B) -> None:
        rng = self.rng
        core_start = self.subs.start_ts[np.maximum(self.core_sub, 0)] // DAY
        hit, rday = anniversary_in_month(core_start, month, 12)
        renewing = np.flatnonzero(active0 & hit & (rday <= ml))
        h = self.health()
        logit = (
            -2.3
            - 1.1 * h
            - 1.6 * (self.util < 0.45)
            + 0.8 * self.detractor_now
            + 0.8 * self.urgent_now
            - 0.5 * (self.segment == 2)
        )
        churn = rng.random(self.n) < sigmoid(logit)
        churned = renewing[churn[renewing]]
        sub = self.core_sub[renewing]
        plan = _PLAN_OF[0, self.tier[renewing] - 1]
        self.renewals.add(
            acc=renewing, sub=sub, ts=rday[renewing] * DAY, won=~churn[renewing],
            mrr=self._mrr(sub, plan, self.seats[renewing]),
        )  # fmt: skip
        # rare mid-term cancellation of very unhealthy accounts
        mid = np.flatnonzero(active0 & ~hit & (h < -1.2) & (rng.random(self.n) < 0.01))
        mid_day, _ = self._rand_day(ms, ml, len(mid))
        acc = np.concatenate([churned, mid])
        day = np.concatenate([rday[churned], mid_day])
        self._cancel_account(acc, day, m)

    def _cancel_account(self, acc: I64, day: I64, m: int) -> None:
        ts = day * DAY
        self.subs.cancel_ts[self.core_sub[acc]] = ts
        for col in range(len(cat.ADDONS)):
            held = self.addon_sub[acc, col] >= 0
            self.subs.cancel_ts[self.addon_sub[acc[held], col]] = ts[held]
            self.addon_sub[acc, col] = -1
        self.status[acc] = 2
        self.svc_end[acc] = day
        self.churn_month[acc] = m

    def _expand(self, ms: int, ml: int, stay: B) -> None:
        rng, n = self.rng, self.n
        up = stay & (rng.random(n) < self.p_up)
        cross = stay & (rng.random(n) < self.p_cross)

        # --- upsell: core seats or tier, sometimes an add-on's seats
        acc = np.flatnonzero(up)
        day, ts = self._rand_day(ms, ml, len(acc))
        held = self.addon_sub[acc] >= 0
        on_addon = held.any(axis=1) & (rng.random(len(acc)) < 0.15)
        s_lim, s_util = self.s_limit[acc], self.s_util[acc]
        p_tier = np.where(
            self.tier[acc] < cat.CORE_TIERS,
            (0.1 + 1.5 * s_lim) / (0.4 + 1.5 * s_lim + 1.8 * s_util),
            0.0,
        )
        tier_up = ~on_addon & (rng.random(len(acc)) < p_tier)
        seats_up = ~on_addon & (~tier_up | (rng.random(len(acc)) < 0.3))
        demand = (self.demand * self._frac())[acc]
        old_seats, old_tier = self.seats[acc].copy(), self.tier[acc].copy()
        target = np.maximum(
            old_seats * rng.uniform(1.1, 1.3, len(acc)), demand * rng.uniform(1.1, 1.4, len(acc))
        )
        new_seats = np.where(
            seats_up, np.maximum(old_seats + 1, np.ceil(target)), old_seats
        ).astype(np.int64)
        new_tier = np.where(tier_up, old_tier + 1, old_tier)
        core = ~on_addon
        ca = acc[core]
        self.seats[ca], self.tier[ca] = new_seats[core], new_tier[core]
        self.seat_change_day[ca] = np.where(seats_up[core], day[core], NEVER)
        old_plan, new_plan = _PLAN_OF[0, old_tier - 1], _PLAN_OF[0, new_tier - 1]
        sub = self.core_sub[acc]
        delta = self._mrr(sub, new_plan, new_seats) - self._mrr(sub, old_plan, old_seats)
        self.changes.add(
            sub=sub[core], ts=ts[core], plan=new_plan[core], qty=new_seats[core], kind=1
        )
        self.events.add(
            acc=ca, day=day[core], ts=ts[core], kind=1, sub=sub[core], delta_mrr=delta[core]
        )
        # add-on seats
        aa = acc[on_addon]
        if len(aa):
            weights = held[on_addon] * rng.random((len(aa), len(cat.ADDONS)))
            col = np.argmax(weights, axis=1)
            s = self.addon_sub[aa, col]
            old_q = self.addon_qty[aa, col]
            new_q = (
                old_q + np.maximum(1, np.ceil(old_q * rng.uniform(0.15, 0.5, len(aa))))
            ).astype(np.int64)
            plan = _PLAN_OF[np.array(cat.ADDONS)[col], self.addon_tier[aa, col] - 1]
            self.addon_qty[aa, col] = new_q
            self.changes.add(sub=s, ts=ts[on_addon], plan=plan, qty=new_q, kind=1)
            self.events.add(
                acc=aa, day=day[on_addon], ts=ts[on_addon], kind=1, sub=s,
                delta_mrr=self._mrr(s, plan, new_q - old_q),
            )  # fmt: skip
        self.last_upsell[acc] = day

        # --- cross-sell: a new subscription for an add-on not held, companions first
        acc = np.flatnonzero(cross)
        if len(acc):
            day, ts = self._rand_day(ms, ml, len(acc))
            held = self.addon_sub[acc] >= 0
            companion_held = held[:, _COMPANION_COL]
            weights = (
                (~held) * (1.0 + 4.0 * companion_held) * rng.random((len(acc), len(cat.ADDONS)))
            )
            col = np.argmax(weights, axis=1)
            prod = np.array(cat.ADDONS)[col]
            tier = 1 + ((rng.random(len(acc)) < 0.25) & (_N_TIERS[prod] > 1)).astype(np.int64)
            plan = _PLAN_OF[prod, tier - 1]
            qty = np.maximum(1, np.round(self.seats[acc] * rng.uniform(0.2, 0.7, len(acc)))).astype(
                np.int64
            )
            s = self._new_subs(acc, prod, ts, plan, qty, self._period_for(acc))
            self.addon_sub[acc, col], self.addon_qty[acc, col], self.addon_tier[acc, col] = (
                s,
                qty,
                tier,
            )
            self.events.add(
                acc=acc, day=day, ts=ts, kind=2, sub=s, delta_mrr=self._mrr(s, plan, qty)
            )
            self.last_cross[acc] = day

        # --- contraction: low utilisation sheds seats; idle add-ons dropped at their renewal
        h = self.health()
        logit = -5.5 + 8.0 * np.maximum(0.5 - self.util, 0) + 0.8 * (h < -0.5)
        con = np.flatnonzero(stay & ~up & (rng.random(n) < sigmoid(logit)))
        au = self.expected_users()[con]
        new_seats = np.maximum(1, np.ceil(au * rng.uniform(1.05, 1.2, len(con)))).astype(np.int64)
        tier_down = (self.tier[con] > 1) & (self.s_limit[con] == 0) & (rng.random(len(con)) < 0.15)
        con_seats = new_seats < self.seats[con]
        keep = con_seats | tier_down
        con, new_seats, tier_down, con_seats = (
            con[keep],
            new_seats[keep],
            tier_down[keep],
            con_seats[keep],
        )
        day, ts = self._rand_day(ms, ml, len(con))
        self.seats[con] = np.where(con_seats, new_seats, self.seats[con])
        self.seat_change_day[con] = np.where(con_seats, day, NEVER)
        self.tier[con] = self.tier[con] - tier_down
        self.changes.add(
            sub=self.core_sub[con], ts=ts, plan=_PLAN_OF[0, self.tier[con] - 1], qty=self.seats[con],
            kind=2,
        )  # fmt: skip
        month = month_index(ms)
        for col in range(len(cat.ADDONS)):
            s = self.addon_sub[:, col]
            hit, rday = anniversary_in_month(self.subs.start_ts[np.maximum(s, 0)] // DAY, month, 12)
            drop = (
                stay
                & (s >= 0)
                & hit
                & (rday <= ml)
                & ~up
                & (rng.random(n) < 0.12 * sigmoid(-1.5 * h - 1.0))
            )
            d = np.flatnonzero(drop)
            self.subs.cancel_ts[s[d]] = rday[d] * DAY
            self.addon_sub[d, col] = -1

    def _reactivate(self, m: int, ms: int, ml: int) -> None:
        """A few churned accounts come back with a new core subscription (new business)."""
        rng = self.rng
        acc = np.flatnonzero(
            (self.status == 2) & (m - self.churn_month >= 3) & (rng.random(self.n) < 0.012)
        )
        if len(acc) == 0:
            return
        day, ts = self._rand_day(ms, ml, len(acc))
        self.tier[acc] = np.maximum(1, self.tier[acc] - (rng.random(len(acc)) < 0.5))
        self.a[acc] = self.mu_a[acc] - 0.6
        self.seats[acc] = np.maximum(
            1, np.ceil(self.demand[acc] * self._frac()[acc] * rng.uniform(0.9, 1.2, len(acc)))
        ).astype(np.int64)
        self.seats_before[acc] = self.seats[acc]
        plan = _PLAN_OF[0, self.tier[acc] - 1]
        period = np.where(self.annual[acc], 12, 1).astype(np.int64)
        sub = self._new_subs(acc, np.zeros_like(acc), ts, plan, self.seats[acc], period)
        self.core_sub[acc] = sub
        self.new_business.add(acc=acc, sub=sub, ts=ts, mrr=self._mrr(sub, plan, self.seats[acc]))
        self.status[acc] = 1
        self.svc_start[acc] = day
        self.svc_end[acc] = NEVER

    # --- usage ------------------------------------------------------------------------------------
    def usage_month(self, m: int) -> Iterator[pa.Table]:
        """Daily usage rows of month `m`, in chunks of accounts (row order: account, day, metric)."""
        cal = self.cal
        ms, ml = int(cal.start[m]), int(cal.last[m])
        first = np.maximum(self.svc_start, ms)
        stop = np.minimum(self.svc_end, ml + 1)
        active = np.flatnonzero(first < stop)
        frac_users = self.demand * self._frac()
        features = self.features()
        for lo in range(0, len(active), USAGE_CHUNK):
            acc = active[lo : lo + USAGE_CHUNK]
            yield self._usage_chunk(
                acc, ms, ml, first[acc], stop[acc], frac_users[acc], features[acc]
            )

    def _usage_chunk(
        self, acc: I64, ms: int, ml: int, first: I64, stop: I64, demand: F64, features: F64
    ) -> pa.Table:
        rng = self.rng_usage
        nd = ml - ms + 1
        k = len(acc)
        days = ms + np.arange(nd)
        mask = (days[None, :] >= first[:, None]) & (days[None, :] < stop[:, None])
        weekend = ((days + 3) % 7) >= 5  # 1970-01-01 was a Thursday
        seats = np.where(
            days[None, :] >= self.seat_change_day[acc, None],
            self.seats[acc, None],
            self.seats_before[acc, None],
        )
        au_exp = np.minimum(seats, demand[:, None])
        wk = np.where(weekend[None, :], self.weekend[acc, None], 1.0)
        au = np.minimum(np.round(au_exp * wk * rng.lognormal(0, 0.07, (k, nd))), seats)
        api_limit = _CORE_API[self.tier[acc], None]
        api_shape = np.where(weekend, 0.45, 1.22)
        api_month = np.minimum(self.api_per_user[acc, None] * au_exp, API_THROTTLE * api_limit)
        api = np.round(api_month / nd * api_shape[None, :] * rng.lognormal(0, 0.25, (k, nd)))
        frac = (np.arange(nd) + 1) / nd
        s0, s1 = self.storage_prev[acc, None], self.storage[acc, None]
        storage = np.round((s0 + (s1 - s0) * frac[None, :]) * rng.lognormal(0, 0.002, (k, nd)), 2)
        fwk = np.where(weekend, 0.5, 1.0)[None, :]
        feats = np.round(features[:, None] * fwk * rng.lognormal(0, 0.12, (k, nd)))
        feats = np.where(au > 0, np.clip(feats, 1, 30), 0.0)
        values = np.stack([au, api, storage, feats], axis=-1)[mask].ravel()
        row_acc, row_day = np.nonzero(mask)
        n_metrics = len(cat.USAGE_METRICS)
        return pa.table(
            {
                "account_id": self.account_ids.take(pa.array(np.repeat(acc[row_acc], n_metrics))),
                "usage_date": pa.array(
                    np.repeat(ms + row_day, n_metrics).astype(np.int32), pa.date32()
                ),
                "metric": pa.array(list(cat.USAGE_METRICS)).take(
                    pa.array(np.tile(np.arange(n_metrics), len(row_acc)))
                ),
                "value": pa.array(values, pa.float64()),
            },
            schema=USAGE_SCHEMA,
        )

    # --- crm activity within the month ---------------------------------------------------------
    def crm_month(self, m: int) -> None:
        seg = self.segment
        crm_month(
            self,
            m,
            CrmDrivers(
                ticket_scale=np.maximum(self.seats, 1) ** 0.35,
                nps_response=np.array([0.3, 0.4, 0.5])[seg],
                nps_second=np.asarray(0.3 * seg, np.float64),
                activity_base=np.array([0.6, 2.0, 5.0])[seg],
                lost_deal_mrr=self.seats * 0.2 * 40.0,
            ),
        )

    def month_end(self, m: int) -> None:
        ref = int(self.cal.full_last[m])
        au = self.expected_users()
        on = (self.status == 1) & (self.svc_start <= ref)
        self.au_hist[:, m] = np.where(on, au, np.nan)
        self.hazards(ref, m)
        if ref <= self.cal.end_day:
            acc = np.flatnonzero(on)
            self.snapshots.add(acc=acc, day=ref, p_up=self.p_up[acc], p_cross=self.p_cross[acc])

    # --- what the extracts read (demo.extracts.World) ---------------------------------------------
    currency_codes = cat.CURRENCIES
    plan_ids = tuple(p.plan_id for p in cat.PLANS)
    product_ids = tuple(p.product_id for p in cat.PRODUCTS)

    def begin(self) -> None:
        self.start_accounts(np.flatnonzero(self.pre))
        self.hazards(self.cal.window_start - 1, -1)

    def account_fields(self) -> dict[str, Any]:
        return {
            "industry": pick(cat.INDUSTRIES, self.industry, self.industry_null),
            "country": pick(tuple(c[0] for c in cat.COUNTRIES), self.country),
            "employee_count": np.where(self.employees_null, np.nan, self.employees),
            "segment": pick(cat.SEGMENTS, self.segment),
            "owner_name": pick(tuple(o[0] for o in cat.OWNERS), self.owner, self.owner_null),
            "owner_email": pick(tuple(o[1] for o in cat.OWNERS), self.owner, self.owner_null),
        }

    def catalog_tables(self) -> Tables:
        yield (
            "billing",
            "products",
            extract_table(
                "billing",
                "products",
                {
                    "product_id": [x.product_id for x in cat.PRODUCTS],
                    "product_name": [x.product_name for x in cat.PRODUCTS],
                    "product_family": [x.family for x in cat.PRODUCTS],
                },
            ),
        )
        yield (
            "billing",
            "plans",
            extract_table(
                "billing",
                "plans",
                {
                    "plan_id": [x.plan_id for x in cat.PLANS],
                    "product_id": [cat.PRODUCTS[x.product].product_id for x in cat.PLANS],
                    "plan_name": [x.plan_name for x in cat.PLANS],
                    "tier_rank": [x.tier_rank for x in cat.PLANS],
                    "list_price": [x.list_price_usd for x in cat.PLANS],
                    "currency": ["USD" for _ in cat.PLANS],
                    "pricing_model": ["per_seat" for _ in cat.PLANS],
                    "billing_period_months": [None for _ in cat.PLANS],  # sold on every period
                },
            ),
        )
        # Core plans cap seats (one active user a day per seat bought), storage held and API
        # calls a month; add-ons limit nothing.
        limits: list[tuple[str, str, float, bool]] = []
        for p in cat.PLANS:
            if cat.PRODUCTS[p.product].family != "core":
                continue
            limits.append((p.plan_id, "active_users", 1.0, True))
            if p.storage_limit_gb is not None:
                limits.append((p.plan_id, "storage_gb", p.storage_limit_gb, False))
            if p.api_calls_limit is not None:
                limits.append((p.plan_id, "api_calls", p.api_calls_limit, False))
        yield "billing", "plan_limits", plan_limits_table(limits)

    def unit_amounts(self, sub: I64, plan: I64) -> F64:
        subs = self.subs
        price_usd = _PLAN_PRICE[plan] * subs.period[sub] * (1 - subs.discount[sub])
        return _money(price_usd, self.currency[subs.acc[sub]])

    def billing_amount(self, amount: F64, acc: I64) -> F64:
        return _money(amount, self.currency[acc])

    def core_mrr(self, acc: I64) -> F64:
        return self._mrr(self.core_sub[acc], _PLAN_OF[0, self.tier[acc] - 1], self.seats[acc])

    def tables(self) -> Tables:
        return build_tables(self, NAMES)

    def oracle(self) -> pa.Table:
        o = self.snapshots
        p_up, p_cross = o.get("p_up", np.float64), o.get("p_cross", np.float64)
        p90 = 1.0 - ((1.0 - p_up) * (1.0 - p_cross)) ** 3
        return oracle_table(self.account_ids, o, p90, self.events, self.cal.end_day)

    def mrr_truth(self) -> pa.Table:
        return mrr_truth(self)


NAMES = CrmNames(
    cat.NAME_WORDS_A,
    cat.NAME_WORDS_B,
    cat.NAME_WORDS_C,
    tuple(c[3] for c in cat.COUNTRIES),
    cat.FIRST_NAMES,
    cat.LAST_NAMES,
    cat.TITLES,
)


def _money(usd: F64, currency: I64) -> F64:
    """USD amounts to the billing currency, rounded to its minor unit (whole yen for JPY)."""
    fx = np.array(cat.FX_PER_USD)[currency]
    dec = np.array(cat.CURRENCY_DECIMALS)[currency]
    scaled = usd * fx
    return np.where(dec == 0, np.round(scaled), np.round(scaled, 2))


# --- main entry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoBusiness:
    """A business the demo generator can simulate."""

    name: str
    description: str
    config: str  # its business declaration (EXPANSION_BUSINESS_CONFIG), from the repo root
    generate: Callable[..., GenerationSummary]


def _generate_per_seat(
    landing_dir: Path, oracle_dir: Path, *, accounts: int, months: int, seed: int, end_date: date
) -> GenerationSummary:
    world = _World(Calendar.build(end_date, months), accounts, seed)
    return run(world, Path(landing_dir), Path(oracle_dir))


DEFAULT_BUSINESS = "per_seat"
BUSINESSES: dict[str, DemoBusiness] = {
    "per_seat": DemoBusiness(
        "per_seat",
        "a CRM sold per seat in three tiers with four add-on products; USD, EUR, GBP, JPY",
        "config/business.yml",
        _generate_per_seat,
    ),
    "flat_tiers": DemoBusiness(
        "flat_tiers",
        "a Japanese CRM sold as five flat-priced tiers with bundled limits, monthly, 6-monthly "
        "and annual terms and two add-on packs that raise limits; JPY",
        "config/examples/flat_tiers/business.yml",
        flat_tiers.generate,
    ),
}


def generate(
    landing_dir: Path,
    oracle_dir: Path,
    *,
    accounts: int = 1000,
    months: int = 24,
    seed: int = 42,
    end_date: date = date(2026, 10, 31),
    business: str = DEFAULT_BUSINESS,
) -> GenerationSummary:
    """Write demo CRM, billing and usage extracts to `landing_dir` and the oracle to `oracle_dir`.

    `business` is a name in BUSINESSES (default: the per-seat CRM). Deterministic for a given
    (business, accounts, months, seed, end_date): same bytes every run.
    """
    if business not in BUSINESSES:
        raise ValueError(f"unknown demo business {business!r}; known: {', '.join(BUSINESSES)}")
    if accounts < 1 or months < 1:
        raise ValueError(f"accounts and months must be positive, got {accounts=} {months=}")
    return BUSINESSES[business].generate(
        Path(landing_dir),
        Path(oracle_dir),
        accounts=accounts,
        months=months,
        seed=seed,
        end_date=end_date,
    )
