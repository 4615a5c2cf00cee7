"""The flat-tier demo business: Kizuna CRM, a Japanese CRM sold as five flat-priced tiers.

Each tier bundles a seat limit and monthly quotas (`demo.flat_tiers_catalog`); customers pay one
price per billing period (quantity 1) on a monthly, 6-monthly or annual term, and two add-ons sold
in packs raise the record and e-mail limits. Everything is in yen; accounts have no segment and
some no country, industry or head count.

The simulation steps through the months with all accounts as numpy vectors, as the default
business does. Latent states (adoption, growth, health, an unobserved buying propensity) evolve
as AR(1) processes; demand for seats, records, e-mails, API requests and workflow runs grows with
the account, and the product caps usage at the account's effective limits (tier plus packs). At
each month end the observable state gives the true monthly hazards of a tier upgrade, of buying
more packs of a held add-on (both upsell) and of buying an add-on not held (cross-sell):

- usage against the effective limits (seats, quotas only a higher tier lifts, and the records and
  e-mails an add-on pack also lifts; entry-tier accounts with apps connected want the API and
  workflows their tier does not include),
- renewal timing: term customers change tier mostly in the month of their renewal (the change
  takes effect at the renewal instant), monthly ones in any month,
- usage growth, NPS, QBRs, feature requests, urgent tickets, recent purchases,
- plus latent health, a fiscal-year budget season and the propensity.

The oracle's p_expansion_90d compounds the hazards of the next three months from the snapshot's
state, with the renewal month moved forward (the state itself is held fixed).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from demo import flat_tiers_catalog as cat
from demo.common import (
    DAY,
    F64,
    I64,
    LONG_AGO,
    NEVER,
    B,
    Calendar,
    GenerationSummary,
    Rows,
    Subs,
    anniversary_in_month,
    ids,
    month_index,
    oracle_table,
    pick,
    run,
    sigmoid,
)
from demo.crm import CrmDrivers, crm_month
from demo.extracts import CrmNames, Tables, build_tables, mrr_truth
from demo.flat_tiers_month import step as month_step
from demo.flat_tiers_usage import usage_chunks

# --- tuning knobs (hazard model) -------------------------------------------------------------
TIER_INTERCEPT = -5.4  # tier upgrade, a month
PACK_INTERCEPT = -5.2  # more packs of a held add-on, a month (per add-on)
CROSS_INTERCEPT = -6.4  # an add-on not held, a month (per add-on)
LATENT_SD = 0.35  # stationary sd of the unobserved propensity
LATENT_RHO = 0.9
# logit weights (tier upgrade, more packs, new add-on) of each signal at the snapshot;
# *_latent are never exported
SIGNAL_WEIGHTS: dict[str, tuple[float, float, float]] = {
    "seat_pressure": (3.2, 0.0, 0.0),  # 0 below 65 % of the seats used on average, 1 at 85 %
    "tier_quota_pressure": (1.5, 0.0, 0.0),  # API / workflow quota: 0 below 70 %, 1 at 95 %
    "pack_metric_pressure": (0.8, 3.4, 3.4),  # records / e-mails against the effective limit
    "automation_wanted": (1.3, 0.0, 0.0),  # entry tier with apps connected (no API, workflows)
    "renewal_in_month": (2.6, 0.6, 0.6),  # term contracts: the month of the renewal
    "mid_term": (-2.0, 0.0, 0.0),  # term contracts: any other month
    "usage_growth_2m": (4.0, 2.0, 2.0),  # relative change of active seats, in [-0.2, 0.3]
    "promoter_nps_90d": (0.9, 0.6, 0.9),
    "detractor_nps_90d": (-0.6, -0.6, -0.6),
    "qbr_90d": (0.5, 0.5, 0.5),
    "feature_request_90d": (0.3, 0.0, 0.3),  # not a feature of the pipeline (tickets are)
    "open_urgent_ticket": (-2.0, -2.0, -2.0),  # "not now"
    "recent_upsell_60d": (-1.5, -1.5, 0.0),
    "recent_cross_sell_90d": (0.0, 0.0, -1.0),
    "top_tier": (0.0, 0.0, 0.6),  # no tier left: an add-on is the way up
    "health_latent": (0.3, 0.3, 0.3),
    "budget_season_latent": (0.3, 0.2, 0.3),  # two months before the fiscal year starts
    "propensity_latent": (1.0, 0.8, 0.8),  # AR(1) buying propensity, sd LATENT_SD
}
HORIZON_MONTHS = 3  # the oracle's 90 days


def _pressure(util: F64, lo: float, full: float, cap: float = 1.2) -> F64:
    return np.asarray(np.clip((util - lo) / (full - lo), 0.0, cap), np.float64)


class FlatTiersWorld:
    """All accounts' state plus everything recorded so far."""

    currency_codes: tuple[str, ...] = (cat.CURRENCY,)
    plan_ids = cat.PLAN_IDS
    product_ids = cat.PRODUCT_IDS

    def __init__(self, cal: Calendar, n: int, seed: int) -> None:
        self.cal = cal
        self.n = n
        self.rng = np.random.Generator(np.random.PCG64([seed, 11]))  # simulation
        self.rng_usage = np.random.Generator(np.random.PCG64([seed, 12]))  # usage noise
        self.rng_crm = np.random.Generator(np.random.PCG64([seed, 13]))  # crm noise
        self.rng_out = np.random.Generator(np.random.PCG64([seed, 14]))  # extract details
        self.account_ids = ids("KZ-", np.arange(n), 6)
        self.currency = np.zeros(n, np.int64)  # every customer is billed in yen
        self._init_accounts(np.random.Generator(np.random.PCG64([seed, 10])))

        self.subs = Subs(max(16, n * 2))
        self.changes = Rows("sub", "ts", "plan", "qty", "kind")  # kind 0 initial 1 up 2 down
        self.events = Rows("acc", "day", "ts", "kind", "sub", "delta_mrr")  # kind 1 up 2 cross
        self.renewals = Rows("acc", "sub", "ts", "won", "mrr")
        self.new_business = Rows("acc", "sub", "ts", "mrr")
        self.lost_opps = Rows("acc", "kind", "created", "closed", "mrr")
        self.tickets = Rows("acc", "priority", "category", "opened", "closed", "updated")
        self.nps = Rows("acc", "contact", "score", "ts")
        self.activities = Rows("acc", "kind", "ts")
        self.snapshots = Rows("acc", "day", "p_up", "p_cross", "p90")
        self.urgent_acc = np.zeros(0, np.int64)
        self.urgent_close = np.zeros(0, np.int64)

        self.status = np.zeros(n, np.int8)  # 0 not started, 1 active, 2 churned
        self.svc_start = np.full(n, NEVER, np.int64)  # first day of the current service
        self.svc_end = np.full(n, NEVER, np.int64)  # first day without service
        self.churn_month = np.full(n, -(1 << 20), np.int64)
        self.core_sub = np.full(n, -1, np.int64)
        self.addon_sub = np.full((n, cat.N_ADDONS), -1, np.int64)
        self.packs = np.zeros((n, cat.N_ADDONS), np.int64)
        self.last_promoter = np.full(n, LONG_AGO, np.int64)
        self.last_detractor = np.full(n, LONG_AGO, np.int64)
        self.last_qbr = np.full(n, LONG_AGO, np.int64)
        self.last_feature_req = np.full(n, LONG_AGO, np.int64)
        self.last_upsell = np.full(n, LONG_AGO, np.int64)
        self.last_cross = np.full(n, LONG_AGO, np.int64)
        self.seat_hist = np.full((n, cal.months), np.nan)
        self.h_hist = np.zeros((n, cal.months))
        self.p_up = np.zeros(n)  # this month's hazards (also drive lost deals)
        self.p_cross = np.zeros(n)
        self.p_tier = np.zeros(n)
        self.p_pack = np.zeros((n, cat.N_ADDONS))
        self.p_new = np.zeros((n, cat.N_ADDONS))
        self.seat_util = np.zeros(n)
        self.detractor_now = np.zeros(n)
        self.urgent_now = np.zeros(n)
        # the month's changes of limits, for daily usage: tier and packs at the month's start,
        # and the day each changed (NEVER: unchanged)
        self.tier_before, self.packs_before = self.tier.copy(), self.packs.copy()
        self.tier_change_day = np.full(n, NEVER, np.int64)
        self.pack_change_day = np.full((n, cat.N_ADDONS), NEVER, np.int64)

    # --- accounts ---------------------------------------------------------------------------
    def _init_accounts(self, rng: np.random.Generator) -> None:
        n, cal = self.n, self.cal
        shares = np.array([c[1] for c in cat.COUNTRIES])
        self.country = rng.choice(len(cat.COUNTRIES), n, p=shares / shares.sum()).astype(np.int64)
        self.suffix = np.array([c[2] for c in cat.COUNTRIES])[self.country]
        self.industry = rng.integers(0, len(cat.INDUSTRIES), n)
        self.industry_null = rng.random(n) < 0.25
        self.tier = (1 + rng.choice(cat.N_TIERS, n, p=cat.TIER_MIX)).astype(np.int64)
        mix = np.array(cat.TERM_MIX)[self.tier - 1]
        self.period_idx = (rng.random(n)[:, None] > np.cumsum(mix, axis=1)).sum(axis=1)
        self.period_idx = np.minimum(self.period_idx, len(cat.PERIODS) - 1).astype(np.int64)
        seat_limit = cat.TIER_LIMITS[self.tier, cat.SEATS]
        self.employees = np.round(seat_limit * np.exp(rng.normal(1.5, 0.8, n))).astype(np.int64)
        self.employees_null = rng.random(n) < 0.35
        self.high_touch = (self.tier >= 4) | ((self.tier == 3) & (rng.random(n) < 0.5))
        big = np.array([o[2] for o in cat.OWNERS])
        self.owner = np.where(
            self.high_touch,
            rng.choice(np.flatnonzero(big), n),
            rng.choice(np.flatnonzero(~big), n),
        ).astype(np.int64)
        self.owner_null = ~self.high_touch & (rng.random(n) < 0.1)
        self.name_parts = rng.integers(0, 1 << 30, (n, 3))

        self.pre = rng.random(n) < 0.6
        tenure_days = np.round(np.exp(rng.uniform(np.log(20), np.log(5 * 365), n))).astype(np.int64)
        window_days = cal.end_day - cal.window_start + 1
        new_day = cal.window_start + rng.integers(0, window_days, n)
        self.first_day = np.where(self.pre, cal.window_start - tenure_days, new_day)
        self.first_ts = self.first_day * DAY + rng.integers(8 * 3600, 18 * 3600, n)
        self.crm_created_ts = self.first_ts - rng.integers(7 * DAY, 120 * DAY, n)
        # most Japanese companies start their fiscal year in April
        self.fiscal_month = np.where(rng.random(n) < 0.75, 3, rng.integers(0, 12, n))
        self.phase = rng.integers(0, 3, n)  # survey / QBR quarter phase

        # latent states
        self.mu_a = rng.normal(0.0, 0.6, n)
        self.a = np.where(self.pre, self.mu_a + rng.normal(0, 0.4, n), self.mu_a - 1.2)
        self.mu_g = rng.normal(0.01, 0.012, n)
        self.g = self.mu_g.copy()
        self.w = rng.normal(0.0, 0.6, n)
        self.z = rng.normal(0.0, LATENT_SD, n)
        self.weekend = rng.uniform(0.03, 0.3, n)
        self.module_base = rng.normal(0.0, 0.5, n)

        # demand: users who want a seat, and monthly wants against the tier's quotas
        lim = cat.TIER_LIMITS[self.tier]
        util0 = np.where(self.pre, rng.beta(5.0, 2.2, n), rng.uniform(0.3, 0.7, n))
        self.wanted = util0 * seat_limit / self.frac()
        ref = cat.TIER_LIMITS[np.maximum(self.tier, 2)]  # the entry tier's wants as if it had them
        self.records = lim[:, cat.RECORDS] * np.where(
            self.pre, rng.beta(2.2, 2.0, n), rng.uniform(0.05, 0.3, n)
        )
        self.records_prev = self.records.copy()
        self.records_rate = rng.uniform(0.005, 0.04, n)  # monthly growth of records held
        self.email_d = lim[:, cat.EMAILS] * np.exp(rng.normal(np.log(0.45), 0.55, n))
        self.email_d *= rng.random(n) > 0.2  # a fifth never send marketing e-mail
        self.email_drift = rng.uniform(0.0, 0.03, n)
        self.integrations = rng.poisson(np.where(self.tier >= 2, 1.8, 0.9)).astype(np.float64)
        self.api_d = ref[:, cat.API] * np.exp(rng.normal(np.log(0.3), 0.7, n))
        self.api_d *= np.minimum(self.integrations, 3) / 2
        self.wf_d = ref[:, cat.WORKFLOWS] * np.exp(rng.normal(np.log(0.35), 0.7, n))
        self.intensity = np.exp(rng.normal(0.0, 0.35, (n, len(cat.ACTIVITY_METRICS))))

        # history before the window: an earlier tier upgrade, add-ons bought with or after the
        # core product
        self.history_upsell = self.pre & (tenure_days > 270) & (self.tier >= 2)
        self.history_upsell &= rng.random(n) < 0.3
        self.history_day = self.first_day + (
            rng.uniform(0.2, 0.95, n) * (cal.window_start - self.first_day)
        ).astype(np.int64)
        need = np.stack([self.records, self.email_d], axis=1) / 0.75
        base = lim[:, cat.ADDON_METRIC]
        short = np.ceil((need - base) / cat.PACK)
        hold = (short >= 1) & (rng.random((n, cat.N_ADDONS)) < 0.6)
        hold |= self.pre[:, None] & (rng.random((n, cat.N_ADDONS)) < 0.05)
        self.init_addons = hold
        self.init_packs = np.maximum(1, short).astype(np.int64)
        later = self.pre[:, None] & (rng.random((n, cat.N_ADDONS)) < 0.6)
        self.init_addon_day = np.where(
            later,
            self.first_day[:, None]
            + (
                rng.uniform(0.1, 1.0, (n, cat.N_ADDONS))
                * (cal.window_start - self.first_day)[:, None]
            ).astype(np.int64),
            self.first_day[:, None],
        )

        n_contacts = rng.integers(2, 4 + self.tier).astype(np.int64)
        self.contact_count = n_contacts
        self.contact_offset = np.concatenate([[0], np.cumsum(n_contacts)[:-1]]).astype(np.int64)

    def frac(self) -> F64:
        """Share of the users who want a seat that are active on a working day, from adoption."""
        return 0.55 + 0.4 * sigmoid(1.5 * self.a)

    def health(self) -> F64:
        return np.asarray(0.6 * self.a + self.w, dtype=np.float64)

    def limits(self) -> F64:
        """Effective limits now: the tier's plus the add-on packs held, per LIMITED_METRICS."""
        lim = cat.TIER_LIMITS[self.tier].copy()
        lim[:, cat.ADDON_METRIC] += self.packs * cat.PACK
        return np.asarray(lim, np.float64)

    def day_limits(self, acc: I64, days: I64) -> F64:
        """Effective limits in force on each of `days` (accounts x days x LIMITED_METRICS)."""
        new_tier = days[None, :] >= self.tier_change_day[acc, None]
        tier = np.where(new_tier, self.tier[acc, None], self.tier_before[acc, None])
        lim = cat.TIER_LIMITS[tier]
        for col in range(cat.N_ADDONS):
            new = days[None, :] >= self.pack_change_day[acc, col, None]
            packs = np.where(new, self.packs[acc, col, None], self.packs_before[acc, col, None])
            lim[:, :, cat.ADDON_METRIC[col]] += packs * cat.PACK[col]
        return np.asarray(lim, np.float64)

    def modules(self) -> F64:
        held = (self.addon_sub >= 0).sum(axis=1)
        f = 2 + 7 * sigmoid(0.9 * self.a + self.module_base) + 0.4 * self.tier + 0.5 * held
        return np.asarray(np.clip(f, 1, cat.MAX_MODULES), dtype=np.float64)

    def usage_now(self) -> F64:
        """Expected usage this month against each limit (30-day averages as the pipeline sees
        them): mean daily active seats, records held, e-mails, API requests, workflow runs."""
        lim = self.limits()
        x = self.wanted * self.frac()
        seats = (5 * np.minimum(x, lim[:, 0]) + 2 * np.minimum(x * self.weekend, lim[:, 0])) / 7
        month = np.minimum(np.stack([self.email_d, self.api_d, self.wf_d], axis=1), lim[:, 2:])
        return np.column_stack([seats, self.records, month])

    # --- subscriptions ----------------------------------------------------------------------
    def _discount(self, acc: I64) -> F64:
        hi = np.array([0.0, 0.0, 0.05, 0.12, 0.2])[self.tier[acc] - 1]
        d = np.round(self.rng.uniform(0.0, 1.0, len(acc)) * hi, 2)
        return np.where(self.rng.random(len(acc)) < 0.5, 0.0, d)

    def price(self, sub: I64, plan: I64, qty: I64) -> F64:
        """MRR of `qty` units of `plan` on `sub` (yen, before rounding to a period's price)."""
        return np.asarray(qty * cat.PLAN_PRICE[plan] * (1 - self.subs.discount[sub]), np.float64)

    def core_plan(self, acc: I64, tier: I64) -> I64:
        return np.asarray((tier - 1) * len(cat.PERIODS) + self.period_idx[acc], np.int64)

    def addon_plan(self, acc: I64, col: int) -> I64:
        first = cat.N_TIERS * len(cat.PERIODS) + col * len(cat.PERIODS)
        return np.asarray(first + self.period_idx[acc], np.int64)

    def new_core(self, acc: I64, ts: I64, tier: I64) -> I64:
        period = cat.PERIOD_ARRAY[self.period_idx[acc]]
        sub = self.subs.add(acc, np.zeros_like(acc), period, ts, self._discount(acc), period)
        plan = self.core_plan(acc, tier)
        self.changes.add(sub=sub, ts=ts, plan=plan, qty=1, kind=0)
        self.core_sub[acc] = sub
        self.new_business.add(acc=acc, sub=sub, ts=ts, mrr=self.price(sub, plan, np.ones_like(acc)))
        return sub

    def new_addon(self, acc: I64, col: int, ts: I64, packs: I64, cross: B) -> None:
        period = cat.PERIOD_ARRAY[self.period_idx[acc]]
        sub = self.subs.add(acc, np.full_like(acc, 1 + col), period, ts, np.zeros(len(acc)), period)
        plan = self.addon_plan(acc, col)
        self.changes.add(sub=sub, ts=ts, plan=plan, qty=packs, kind=0)
        self.addon_sub[acc, col], self.packs[acc, col] = sub, packs
        self.pack_change_day[acc, col] = ts // DAY
        c = np.flatnonzero(cross)
        self.events.add(
            acc=acc[c], day=ts[c] // DAY, ts=ts[c], kind=2, sub=sub[c],
            delta_mrr=self.price(sub[c], plan[c], packs[c]),
        )  # fmt: skip

    def start_accounts(self, acc: I64) -> None:
        """First subscriptions of accounts (core plus add-ons held), with their history."""
        if len(acc) == 0:
            return
        hist = self.history_upsell[acc]
        sub = self.new_core(acc, self.first_ts[acc], self.tier[acc] - hist)
        h = np.flatnonzero(hist)
        if len(h):
            a = acc[h]
            ts = self.history_day[a] * DAY + self.rng.integers(8 * 3600, 18 * 3600, len(h))
            old, new = self.core_plan(a, self.tier[a] - 1), self.core_plan(a, self.tier[a])
            self.changes.add(sub=sub[h], ts=ts, plan=new, qty=1, kind=1)
            delta = self.price(sub[h], new, np.ones_like(a)) - self.price(
                sub[h], old, np.ones_like(a)
            )
            self.events.add(acc=a, day=ts // DAY, ts=ts, kind=1, sub=sub[h], delta_mrr=delta)
        for col in range(cat.N_ADDONS):
            a = acc[self.init_addons[acc, col]]
            day = self.init_addon_day[a, col]
            later = day > self.first_day[a]
            ts = np.where(
                later, day * DAY + self.rng.integers(8 * 3600, 18 * 3600, len(a)), self.first_ts[a]
            )
            self.new_addon(a, col, ts, self.init_packs[a, col], later)
        self.status[acc] = 1
        self.svc_start[acc] = self.first_day[acc]
        self.svc_end[acc] = NEVER

    def begin(self) -> None:
        self.start_accounts(np.flatnonzero(self.pre))
        self.hazards(self.cal.window_start - 1, -1)

    # --- hazards ------------------------------------------------------------------------------
    def renewal_month(self, ref_day: int, ahead: int) -> tuple[B, I64]:
        """Whether each core term contract renews in the month `ahead` months after ref_day's."""
        core_start = self.subs.start_ts[np.maximum(self.core_sub, 0)] // DAY
        term = self.subs.term[np.maximum(self.core_sub, 0)]
        hit, day = anniversary_in_month(core_start, month_index(ref_day) + ahead, term)
        return hit & (term > 1), day

    def hazards(self, ref_day: int, m: int) -> None:
        """True monthly hazards for the months after `ref_day`, from the state at `ref_day`."""
        n = self.n
        active = (self.status == 1) & (self.svc_start <= ref_day)
        lim = self.limits()
        use = self.usage_now()
        with np.errstate(divide="ignore", invalid="ignore"):
            util = np.where(lim > 0, use / lim, 0.0)
        self.seat_util = util[:, cat.SEATS]
        entry = self.tier == 1
        pack_p = _pressure(util[:, cat.ADDON_METRIC], 0.7, 0.95)  # (n, add-ons)
        growth = np.zeros(n)
        if m >= 2:
            prev = self.seat_hist[:, m - 2]
            ok = np.isfinite(prev) & (prev > 0)
            growth[ok] = use[ok, cat.SEATS] / prev[ok] - 1.0
        recent = {
            "promoter_nps_90d": self.last_promoter,
            "detractor_nps_90d": self.last_detractor,
            "qbr_90d": self.last_qbr,
            "feature_request_90d": self.last_feature_req,
            "recent_cross_sell_90d": self.last_cross,
        }
        ref_ts = (ref_day + 1) * DAY - 1
        urgent = np.zeros(n)
        still = (self.urgent_close > ref_ts) | (self.urgent_close < 0)
        np.maximum.at(urgent, self.urgent_acc[still], 1.0)
        next_month = month_index(ref_day + 1)
        signals: dict[str, Any] = {
            "seat_pressure": _pressure(self.seat_util, 0.65, 0.85, 1.25),
            "tier_quota_pressure": np.where(
                entry, 0.0, _pressure(util[:, [cat.API, cat.WORKFLOWS]], 0.7, 0.95).max(axis=1)
            ),
            "pack_metric_pressure": pack_p,
            "automation_wanted": entry * np.clip(self.integrations / 3.0, 0.0, 1.0),
            "usage_growth_2m": np.clip(growth, -0.2, 0.3),
            **{k: (ref_day - v <= 90).astype(float) for k, v in recent.items()},
            "open_urgent_ticket": urgent,
            "recent_upsell_60d": (ref_day - self.last_upsell <= 60).astype(float),
            "top_tier": (self.tier == cat.N_TIERS).astype(float),
            "health_latent": self.health(),
            "budget_season_latent": (((self.fiscal_month - next_month) % 12) <= 2).astype(float),
            "propensity_latent": self.z,
        }
        tier = np.full(n, TIER_INTERCEPT)
        pack = np.full((n, cat.N_ADDONS), PACK_INTERCEPT)
        new = np.full((n, cat.N_ADDONS), CROSS_INTERCEPT)
        for name, (w_tier, w_pack, w_new) in SIGNAL_WEIGHTS.items():
            if name in ("renewal_in_month", "mid_term"):
                continue
            s = np.asarray(signals[name], np.float64)
            tier += w_tier * (s.max(axis=1) if s.ndim == 2 else s)
            s2 = s if s.ndim == 2 else s[:, None]
            pack += w_pack * s2
            new += w_new * s2
        held = self.addon_sub >= 0
        can_tier = active & (self.tier < cat.N_TIERS)
        p_up, p_cross, stay = [], [], np.ones(n)
        for ahead in range(1, HORIZON_MONTHS + 1):
            renew, _ = self.renewal_month(ref_day, ahead)
            term = self.subs.term[np.maximum(self.core_sub, 0)] > 1
            r_tier, r_pack, r_new = SIGNAL_WEIGHTS["renewal_in_month"]
            mid = SIGNAL_WEIGHTS["mid_term"][0]
            p_t = np.where(can_tier, sigmoid(tier + r_tier * renew + mid * (term & ~renew)), 0.0)
            p_p = np.where(active[:, None] & held, sigmoid(pack + r_pack * renew[:, None]), 0.0)
            p_n = np.where(active[:, None] & ~held, sigmoid(new + r_new * renew[:, None]), 0.0)
            up = 1.0 - (1.0 - p_t) * np.prod(1.0 - p_p, axis=1)
            cross = 1.0 - np.prod(1.0 - p_n, axis=1)
            if ahead == 1:
                self.p_tier, self.p_pack, self.p_new = p_t, p_p, p_n
            p_up.append(up)
            p_cross.append(cross)
            stay *= (1.0 - up) * (1.0 - cross)
        self.p_up, self.p_cross, self.p90 = p_up[0], p_cross[0], 1.0 - stay
        self.detractor_now = signals["detractor_nps_90d"]
        self.urgent_now = urgent

    # --- one month ------------------------------------------------------------------------------
    def step(self, m: int) -> None:
        month_step(self, m)

    def evolve_latents(self) -> None:
        """Latent states move (adoption waits for the first subscription: onboarding ramp)."""
        rng, n = self.rng, self.n
        a = self.mu_a + 0.85 * (self.a - self.mu_a) + rng.normal(0, 0.25, n)
        self.a = np.where(self.status == 0, self.a, a)
        self.g = self.mu_g + 0.7 * (self.g - self.mu_g) + rng.normal(0, 0.01, n)
        self.w = 0.8 * self.w + rng.normal(0, 0.36, n)
        self.z = LATENT_RHO * self.z + rng.normal(0, LATENT_SD * np.sqrt(1 - LATENT_RHO**2), n)

    def usage_month(self, m: int) -> Iterator[pa.Table]:
        return usage_chunks(self, m)

    def crm_month(self, m: int) -> None:
        x = np.maximum(self.wanted * self.frac(), 1.0)
        crm_month(
            self,
            m,
            CrmDrivers(
                ticket_scale=x**0.35,
                nps_response=np.where(self.high_touch, 0.45, 0.3),
                nps_second=np.where(self.high_touch, 0.4, 0.1),
                activity_base=np.where(self.high_touch, 4.0, 0.6),
                lost_deal_mrr=0.6 * cat.PLAN_PRICE[self.core_plan(np.arange(self.n), self.tier)],
            ),
        )

    def month_end(self, m: int) -> None:
        ref = int(self.cal.full_last[m])
        on = (self.status == 1) & (self.svc_start <= ref)
        self.seat_hist[:, m] = np.where(on, self.usage_now()[:, cat.SEATS], np.nan)
        self.hazards(ref, m)
        if ref <= self.cal.end_day:
            acc = np.flatnonzero(on)
            self.snapshots.add(
                acc=acc, day=ref, p_up=self.p_up[acc], p_cross=self.p_cross[acc], p90=self.p90[acc]
            )

    # --- what the extracts read (demo.extracts.World) ---------------------------------------------
    def account_fields(self) -> dict[str, Any]:
        no_country = np.array([c[0] is None for c in cat.COUNTRIES])[self.country]
        owners = cat.OWNERS
        return {
            "industry": pick(cat.INDUSTRIES, self.industry, self.industry_null),
            "country": pick(tuple(c[0] or "" for c in cat.COUNTRIES), self.country, no_country),
            "employee_count": np.where(self.employees_null, np.nan, self.employees),
            "segment": pa.nulls(self.n, pa.string()),  # this business does not segment
            "owner_name": pick(tuple(o[0] for o in owners), self.owner, self.owner_null),
            "owner_email": pick(tuple(o[1] for o in owners), self.owner, self.owner_null),
        }

    def catalog_tables(self) -> Tables:
        return cat.price_list()

    def unit_amounts(self, sub: I64, plan: I64) -> F64:
        subs = self.subs
        return np.asarray(
            np.round(cat.PLAN_PRICE[plan] * subs.period[sub] * (1 - subs.discount[sub])), np.float64
        )

    def billing_amount(self, amount: F64, acc: I64) -> F64:
        return np.asarray(np.round(amount), np.float64)  # whole yen

    def core_mrr(self, acc: I64) -> F64:
        sub = self.core_sub[acc]
        return self.price(sub, self.core_plan(acc, self.tier[acc]), np.ones_like(acc))

    def tables(self) -> Tables:
        return build_tables(self, NAMES)

    def oracle(self) -> pa.Table:
        s = self.snapshots
        return oracle_table(
            self.account_ids, s, s.get("p90", np.float64), self.events, self.cal.end_day
        )

    def mrr_truth(self) -> pa.Table:
        return mrr_truth(self)


NAMES = CrmNames(
    cat.NAME_WORDS_A,
    cat.NAME_WORDS_B,
    cat.NAME_WORDS_C,
    cat.SUFFIXES,
    cat.FIRST_NAMES,
    cat.LAST_NAMES,
    cat.TITLES,
)


def generate(
    landing_dir: Path,
    oracle_dir: Path,
    *,
    accounts: int = 1000,
    months: int = 24,
    seed: int = 42,
    end_date: date = date(2026, 10, 31),
) -> GenerationSummary:
    """Write the flat-tier business's extracts to `landing_dir` and its oracle to `oracle_dir`.

    Deterministic for a given (accounts, months, seed, end_date): same bytes every run.
    """
    if accounts < 1 or months < 1:
        raise ValueError(f"accounts and months must be positive, got {accounts=} {months=}")
    world = FlatTiersWorld(Calendar.build(end_date, months), accounts, seed)
    return run(world, Path(landing_dir), Path(oracle_dir))
