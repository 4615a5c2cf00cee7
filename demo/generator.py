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

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from numpy.typing import NDArray

from demo import catalog as cat
from flows.ingest.contract import TABLES_BY_KEY
from flows.ingest.contract import table as contract_table

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

DAY = 86_400
NEVER = np.int64(1 << 40)  # a day number far in the future
LONG_AGO = np.int64(-(1 << 30))
NULL_TS = np.int64(-1)

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
LABEL_DAYS = 90
API_THROTTLE = 1.02  # api calls are throttled just above the plan's monthly limit

USAGE_CHUNK = 16_384  # accounts per Parquet row group: bounds memory at any size
USAGE_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("usage_date", pa.date32()),
        ("metric", pa.string()),
        ("value", pa.float64()),
    ]
)
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": ["account_id", "metric"],
}


@dataclass(frozen=True)
class GenerationSummary:
    """What `generate` wrote and how hard the oracle finds the labels."""

    rows: dict[str, int]  # "<source>.<table>" -> rows written
    files: tuple[Path, ...]
    base_rate: float  # share of complete-label snapshots that expand within 90 days
    oracle_auc: float  # ROC AUC of p_expansion_90d against label_expansion_90d
    upsell_events: int
    cross_sell_events: int
    labelled_snapshots: int


# --- calendar helpers --------------------------------------------------------------------------


def _month_of(day: I64) -> I64:
    """Months since 1970-01 of a day number (days since 1970-01-01)."""
    return np.asarray(day, dtype="datetime64[D]").astype("datetime64[M]").astype(np.int64)


def _month_index(day: int) -> int:
    """Months since 1970-01 of one day number."""
    return int(np.datetime64(day, "D").astype("datetime64[M]").astype(np.int64))


def _month_start(month: I64) -> I64:
    return np.asarray(month, dtype="datetime64[M]").astype("datetime64[D]").astype(np.int64)


def _days_in_month(month: I64) -> I64:
    return _month_start(np.asarray(month) + 1) - _month_start(month)


def _add_months(day: I64, k: I64) -> I64:
    """Same day-of-month `k` months later, clamped to the month's last day."""
    day = np.asarray(day, dtype=np.int64)
    month = _month_of(day)
    dom = day - _month_start(month)
    target = month + np.asarray(k, dtype=np.int64)
    return _month_start(target) + np.minimum(dom, _days_in_month(target) - 1)


def _next_anniversary(start_day: I64, after_day: I64, term: int) -> I64:
    """First anniversary (every `term` months) of `start_day` strictly after `after_day`."""
    diff = _month_of(after_day) - _month_of(start_day)
    k = np.maximum(diff // term, 0) * term
    cand = _add_months(start_day, k)
    cand = np.where(cand <= after_day, _add_months(start_day, k + term), cand)
    return np.where(cand <= after_day, _add_months(start_day, k + 2 * term), cand)


def _anniversary_in_month(start_day: I64, month: int, term: int) -> tuple[B, I64]:
    """Whether an anniversary of `start_day` (every `term` months) falls in `month`, and its day."""
    diff = month - _month_of(start_day)
    hit = (diff > 0) & (diff % term == 0)
    return hit, _add_months(start_day, np.maximum(diff, 0))


def _sigmoid(x: F64) -> F64:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


@dataclass(frozen=True)
class _Calendar:
    months: int
    first_month: int  # months since 1970-01
    start: I64  # first day of each month
    last: I64  # last day of data in each month (end_day in the last month)
    full_last: I64  # calendar last day of each month
    end_day: int

    @property
    def window_start(self) -> int:
        return int(self.start[0])

    @property
    def end_ts(self) -> int:
        return (self.end_day + 1) * DAY - 1

    @classmethod
    def build(cls, end_date: date, months: int) -> _Calendar:
        end_day = int(np.datetime64(end_date, "D").astype(np.int64))
        last_month = _month_index(end_day)
        first = last_month - months + 1
        ms = np.arange(first, last_month + 1, dtype=np.int64)
        start = _month_start(ms)
        full_last = _month_start(ms + 1) - 1
        return cls(months, first, start, np.minimum(full_last, end_day), full_last, end_day)


# --- growable column store ---------------------------------------------------------------------


class _Rows:
    """Rows appended in batches of numpy arrays; concatenated once at the end."""

    def __init__(self, *names: str) -> None:
        self.names = names
        self.parts: dict[str, list[NDArray[Any]]] = {n: [] for n in names}

    def add(self, **cols: Any) -> None:
        sizes = [np.size(v) for v in cols.values() if np.ndim(v) > 0]
        n = max(sizes) if sizes else 1
        for name in self.names:
            v = np.asarray(cols[name])
            self.parts[name].append(np.broadcast_to(v, (n,)).copy() if v.ndim == 0 else v)

    def get(self, name: str, dtype: Any = np.int64) -> NDArray[Any]:
        parts = self.parts[name]
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


class _Subs:
    """Subscriptions with a mutable cancel time; grown by doubling."""

    def __init__(self, capacity: int) -> None:
        self.n = 0
        self.acc = np.zeros(capacity, np.int64)
        self.prod = np.zeros(capacity, np.int64)
        self.period = np.zeros(capacity, np.int64)
        self.start_ts = np.zeros(capacity, np.int64)
        self.cancel_ts = np.full(capacity, NULL_TS, np.int64)
        self.discount = np.zeros(capacity, np.float64)

    def add(self, acc: I64, prod: I64, period: I64, start_ts: I64, discount: F64) -> I64:
        k = len(acc)
        while self.n + k > len(self.acc):
            for name in ("acc", "prod", "period", "start_ts", "discount"):
                arr = getattr(self, name)
                setattr(self, name, np.concatenate([arr, np.zeros_like(arr)]))
            self.cancel_ts = np.concatenate([self.cancel_ts, np.full_like(self.cancel_ts, NULL_TS)])
        idx = np.arange(self.n, self.n + k, dtype=np.int64)
        self.acc[idx], self.prod[idx], self.period[idx] = acc, prod, period
        self.start_ts[idx], self.discount[idx] = start_ts, discount
        self.n += k
        return idx


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

    def __init__(self, cal: _Calendar, n: int, seed: int) -> None:
        self.cal = cal
        self.n = n
        self.rng = np.random.Generator(np.random.PCG64([seed, 1]))  # simulation
        self.rng_usage = np.random.Generator(np.random.PCG64([seed, 2]))  # usage noise
        self.rng_crm = np.random.Generator(np.random.PCG64([seed, 3]))  # crm noise
        self.rng_out = np.random.Generator(np.random.PCG64([seed, 4]))  # extract details
        self.account_ids = _ids("0015g000", np.arange(n), 7)
        self._init_accounts(np.random.Generator(np.random.PCG64([seed, 0])))

        self.subs = _Subs(max(16, n * 3))
        self.changes = _Rows("sub", "ts", "plan", "qty", "kind")  # kind 0 initial 1 up 2 down
        self.events = _Rows("acc", "day", "ts", "kind", "sub", "delta_mrr")  # kind 1 up 2 cross
        self.renewals = _Rows("acc", "sub", "ts", "won", "mrr")
        self.new_business = _Rows("acc", "sub", "ts", "mrr")
        self.lost_opps = _Rows("acc", "kind", "created", "closed", "mrr")
        self.tickets = _Rows("acc", "priority", "category", "opened", "closed", "updated")
        self.nps = _Rows("acc", "contact", "score", "ts")
        self.activities = _Rows("acc", "kind", "ts")
        self.oracle = _Rows("acc", "day", "p_up", "p_cross")
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
        return 0.5 + 0.45 * _sigmoid(1.5 * self.a)

    def health(self) -> F64:
        return np.asarray(0.6 * self.a + self.w, dtype=np.float64)

    def features(self) -> F64:
        n_addons = (self.addon_sub >= 0).sum(axis=1)
        f = 3 + 20 * _sigmoid(0.9 * self.a + self.feature_base) + 2 * n_addons
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
        renew_days = _next_anniversary(core_start, np.full(self.n, ref_day), 12) - ref_day
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
        next_month = _month_index(ref_day + 1)
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
        self.p_up = np.where(active, _sigmoid(up), 0.0)
        self.p_cross = np.where(active & ~held.all(axis=1), _sigmoid(cross), 0.0)
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
        hit, rday = _anniversary_in_month(core_start, month, 12)
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
        churn = rng.random(self.n) < _sigmoid(logit)
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
        con = np.flatnonzero(stay & ~up & (rng.random(n) < _sigmoid(logit)))
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
        month = _month_index(ms)
        for col in range(len(cat.ADDONS)):
            s = self.addon_sub[:, col]
            hit, rday = _anniversary_in_month(
                self.subs.start_ts[np.maximum(s, 0)] // DAY, month, 12
            )
            drop = (
                stay
                & (s >= 0)
                & hit
                & (rday <= ml)
                & ~up
                & (rng.random(n) < 0.12 * _sigmoid(-1.5 * h - 1.0))
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
        cal, rng = self.cal, self.rng_crm
        ms, ml = int(cal.start[m]), int(cal.last[m])
        nd = ml - ms + 1
        first = np.maximum(self.svc_start, ms)
        stop = np.minimum(self.svc_end, ml + 1)
        active_days = np.maximum(stop - first, 0)
        share = active_days / nd
        h = self.health()
        month = cal.first_month + m

        def when(acc: I64, hours: tuple[int, int] = (8, 18)) -> I64:
            d = first[acc] + (rng.random(len(acc)) * active_days[acc]).astype(np.int64)
            return d * DAY + rng.integers(hours[0] * 3600, hours[1] * 3600, len(acc))

        # support tickets
        rate = 0.12 * np.maximum(self.seats, 1) ** 0.35 * np.exp(-0.5 * h) * share
        acc = np.repeat(np.arange(self.n), rng.poisson(rate))
        opened = when(acc, (0, 24))
        p = np.stack(
            [
                np.full(len(acc), 0.25),
                np.full(len(acc), 0.5),
                np.full(len(acc), 0.18),
                0.035 * np.exp(-0.6 * h[acc]),
            ],
            axis=1,
        )
        priority = (
            rng.random(len(acc))[:, None] * p.sum(axis=1)[:, None] > np.cumsum(p, axis=1)
        ).sum(axis=1)
        category = rng.choice(
            len(cat.TICKET_CATEGORIES), len(acc), p=[0.3, 0.25, 0.08, 0.15, 0.12, 0.1]
        )
        median_days = np.array([9.0, 6.0, 3.5, 2.5])[priority]
        dur = (median_days * DAY * rng.lognormal(0, 0.9, len(acc))).astype(np.int64) + 600
        closed = opened + dur
        still_open = closed > cal.end_ts
        touched = opened + (rng.random(len(acc)) * (cal.end_ts - opened)).astype(np.int64)
        updated = np.where(still_open, np.minimum(touched, opened + dur), closed)
        closed = np.where(still_open, NULL_TS, closed)
        self.tickets.add(
            acc=acc,
            priority=priority,
            category=category,
            opened=opened,
            closed=closed,
            updated=updated,
        )
        urgent = priority == 3
        keep = (self.urgent_close < 0) | (self.urgent_close > ms * DAY)
        self.urgent_acc = np.concatenate([self.urgent_acc[keep], acc[urgent]])
        self.urgent_close = np.concatenate([self.urgent_close[keep], closed[urgent]])
        fr = category == cat.FEATURE_REQUEST
        np.maximum.at(self.last_feature_req, acc[fr], opened[fr] // DAY)

        # NPS survey once a quarter per account (its phase); some contacts respond
        surveyed = (active_days > 0) & ((month + self.phase) % 3 == 0)
        p_resp = np.array([0.3, 0.4, 0.5])[self.segment]
        n_resp = (rng.random(self.n) < p_resp) * (1 + (rng.random(self.n) < 0.3 * self.segment))
        acc = np.repeat(np.arange(self.n), np.where(surveyed, n_resp, 0))
        ts = when(acc)
        contact = self.contact_offset[acc] + rng.integers(0, 2, len(acc))
        score = np.clip(np.round(7.2 + 1.8 * h[acc] + rng.normal(0, 1.3, len(acc))), 0, 10).astype(
            np.int64
        )
        self.nps.add(acc=acc, contact=contact, score=score, ts=ts)
        np.maximum.at(self.last_promoter, acc[score >= 9], ts[score >= 9] // DAY)
        np.maximum.at(self.last_detractor, acc[score <= 6], ts[score <= 6] // DAY)

        # activities: more for high-touch accounts; quarterly business reviews
        base = np.array([0.6, 2.0, 5.0])[self.segment] * np.exp(0.25 * h) * share
        acc = np.repeat(np.arange(self.n), rng.poisson(base))
        kind = rng.choice(3, len(acc), p=[0.55, 0.3, 0.15])
        qbr_acc = np.flatnonzero(
            self.high_touch
            & (active_days > 0)
            & ((month + self.phase) % 3 == 1)
            & (rng.random(self.n) < 0.85)
        )
        acc = np.concatenate([acc, qbr_acc])
        kind = np.concatenate([kind, np.full(len(qbr_acc), 3)])
        ts = when(acc)
        self.activities.add(acc=acc, kind=kind, ts=ts)
        np.maximum.at(self.last_qbr, acc[kind == 3], ts[kind == 3] // DAY)

        # sales opportunities that do not close: interest without a purchase
        p_lost = 0.8 * (self.p_up + self.p_cross) + 0.01
        acc = np.flatnonzero((self.status == 1) & (active_days > 0) & (rng.random(self.n) < p_lost))
        created = when(acc)
        kind = np.where(
            rng.random(len(acc)) * (self.p_up[acc] + self.p_cross[acc]) < self.p_up[acc], 1, 2
        )
        closed = created + rng.integers(7 * DAY, 60 * DAY, len(acc))
        self.lost_opps.add(
            acc=acc, kind=kind, created=created, closed=closed, mrr=self.seats[acc] * 0.2 * 40.0
        )

    def month_end(self, m: int) -> None:
        ref = int(self.cal.full_last[m])
        au = self.expected_users()
        on = (self.status == 1) & (self.svc_start <= ref)
        self.au_hist[:, m] = np.where(on, au, np.nan)
        self.hazards(ref, m)
        if ref <= self.cal.end_day:
            acc = np.flatnonzero(on)
            self.oracle.add(acc=acc, day=ref, p_up=self.p_up[acc], p_cross=self.p_cross[acc])


# --- output helpers ------------------------------------------------------------------------------


def _ids(prefix: str, nums: NDArray[Any], width: int) -> pa.Array:
    digits = pc.utf8_lpad(
        pc.cast(pa.array(np.asarray(nums, np.int64)), pa.string()), width=width, padding="0"
    )
    return pc.binary_join_element_wise(prefix, digits, "")


def _arrow_type(duck: str) -> pa.DataType:
    if duck == "VARCHAR":
        return pa.string()
    if duck == "INTEGER":
        return pa.int32()
    if duck == "BOOLEAN":
        return pa.bool_()
    if duck == "TIMESTAMP":
        return pa.timestamp("s")  # UTC, written as `2025-03-14 09:21:05`
    if duck == "DOUBLE":
        return pa.float64()
    if duck == "DATE":
        return pa.date32()
    if duck.startswith("DECIMAL"):
        precision, scale = (int(x) for x in duck[8:-1].split(","))
        return pa.decimal128(precision, scale)
    raise ValueError(f"contract type {duck!r} has no Arrow mapping in demo.generator")


def _to_arrow(values: Any, duck: str) -> pa.Array:
    """Numpy or Arrow values to the Arrow type of a contract column (nulls: -1 ts, NaN, None)."""
    typ = _arrow_type(duck)
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values.cast(typ)
    arr = np.asarray(values)
    if duck == "TIMESTAMP":
        return pa.array(arr.astype(np.int64), typ, mask=arr < 0)
    if duck.startswith("DECIMAL"):
        return pa.array(np.round(arr.astype(np.float64), typ.scale), from_pandas=True).cast(typ)
    if duck == "INTEGER" and arr.dtype.kind == "f":
        return pa.array(arr, pa.float64(), from_pandas=True).cast(typ)
    return pa.array(arr, typ, from_pandas=True)


def _table(source: str, name: str, cols: dict[str, Any]) -> pa.Table:
    """Arrow table with exactly the contract's columns, order and types."""
    spec = contract_table(source, name)
    expected = [c.name for c in spec.columns]
    if list(cols) != expected:
        raise ValueError(
            f"{source}.{name}: columns {list(cols)} differ from the contract {expected}"
        )
    arrays = [_to_arrow(cols[c.name], c.type) for c in spec.columns]
    return pa.table(arrays, names=expected)


def _pick(names: tuple[str, ...], idx: NDArray[Any], null: B | None = None) -> pa.Array:
    return pa.array(list(names)).take(pa.array(np.asarray(idx, np.int64), mask=null))


def _money(usd: F64, currency: I64) -> F64:
    """USD amounts to the billing currency, rounded to its minor unit (whole yen for JPY)."""
    fx = np.array(cat.FX_PER_USD)[currency]
    dec = np.array(cat.CURRENCY_DECIMALS)[currency]
    scaled = usd * fx
    return np.where(dec == 0, np.round(scaled), np.round(scaled, 2))


def _auc(y: B, p: F64) -> float:
    from sklearn.metrics import roc_auc_score

    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, p))


# --- main entry -----------------------------------------------------------------------------------


def generate(
    landing_dir: Path,
    oracle_dir: Path,
    *,
    accounts: int = 1000,
    months: int = 24,
    seed: int = 42,
    end_date: date = date(2026, 10, 31),
) -> GenerationSummary:
    """Write demo CRM, billing and usage extracts to `landing_dir` and the oracle to `oracle_dir`.

    Deterministic for a given (accounts, months, seed, end_date): same bytes every run.
    """
    if accounts < 1 or months < 1:
        raise ValueError(f"accounts and months must be positive, got {accounts=} {months=}")
    landing_dir, oracle_dir = Path(landing_dir), Path(oracle_dir)
    cal = _Calendar.build(end_date, months)
    world = _World(cal, accounts, seed)
    files: list[Path] = []
    rows: dict[str, int] = {}

    usage_dir = landing_dir / "usage" / "usage_daily"
    _clear_exports(landing_dir)
    usage_dir.mkdir(parents=True, exist_ok=True)
    world.start_accounts(np.flatnonzero(world.pre))
    world.hazards(cal.window_start - 1, -1)
    usage_rows = 0
    for m in range(cal.months):
        world.step(m)
        stamp = str(np.datetime64(int(cal.start[m]), "D"))[:7]
        path = usage_dir / f"usage_daily_{stamp}.parquet"
        with pq.ParquetWriter(path, USAGE_SCHEMA, **PARQUET_OPTIONS) as writer:
            for chunk in world.usage_month(m):
                writer.write_table(chunk)
                usage_rows += chunk.num_rows
        files.append(path)
        world.crm_month(m)
        world.month_end(m)
    rows["usage.usage_daily"] = usage_rows

    stamp = str(np.datetime64(cal.end_day, "D")).replace("-", "")
    for source, name, tbl in _build_tables(world):
        folder = landing_dir / source / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}_{stamp}.csv"
        pacsv.write_csv(tbl, path, pacsv.WriteOptions(quoting_style="needed"))
        files.append(path)
        rows[f"{source}.{name}"] = tbl.num_rows
        del tbl
    rows = {key: rows[key] for key in TABLES_BY_KEY if key in rows}  # contract order

    oracle = _build_oracle(world)
    oracle_dir.mkdir(parents=True, exist_ok=True)
    path = oracle_dir / "expansion_oracle.parquet"
    pq.write_table(oracle, path, compression="zstd")
    files.append(path)
    path = oracle_dir / "mrr_monthly.parquet"
    pq.write_table(_build_mrr_truth(world), path, compression="zstd")
    files.append(path)

    complete = oracle.column("is_label_complete").to_numpy(zero_copy_only=False)
    label = oracle.column("label_expansion_90d").to_numpy(zero_copy_only=False)[complete]
    prob = oracle.column("p_expansion_90d").to_numpy()[complete]
    kind = world.events.get("kind")
    in_window = world.events.get("day") >= cal.window_start
    return GenerationSummary(
        rows=rows,
        files=tuple(files),
        base_rate=float(label.mean()) if len(label) else float("nan"),
        oracle_auc=_auc(label, prob),
        upsell_events=int(((kind == 1) & in_window).sum()),
        cross_sell_events=int(((kind == 2) & in_window).sum()),
        labelled_snapshots=int(complete.sum()),
    )


def _clear_exports(landing_dir: Path) -> None:
    """Remove extracts of an earlier demo run, so a folder never mixes two runs."""
    for spec in TABLES_BY_KEY.values():
        folder = landing_dir / spec.source / spec.name
        ext = "parquet" if spec.file_format == "parquet" else "csv"
        for old in sorted(folder.glob(f"{spec.name}_*.{ext}")):
            old.unlink()


def _build_oracle(world: _World) -> pa.Table:
    o = world.oracle
    acc, day = o.get("acc"), o.get("day")
    p_up, p_cross = o.get("p_up", np.float64), o.get("p_cross", np.float64)
    p90 = 1.0 - ((1.0 - p_up) * (1.0 - p_cross)) ** 3
    ev_acc, ev_day, ev_kind = (
        world.events.get("acc"),
        world.events.get("day"),
        world.events.get("kind"),
    )
    span = np.int64(1 << 32)

    def within(kind_mask: B) -> B:
        key = np.sort(ev_acc[kind_mask] * span + ev_day[kind_mask])
        lo = np.searchsorted(key, acc * span + day, side="right")
        hi = np.searchsorted(key, acc * span + day + LABEL_DAYS, side="right")
        return np.asarray(hi > lo)

    up, cross = within(ev_kind == 1), within(ev_kind == 2)
    order = np.lexsort((day, acc))
    return pa.table(
        {
            "account_id": world.account_ids.take(pa.array(acc[order])),
            "snapshot_date": pa.array(day[order].astype(np.int32), pa.date32()),
            "p_upsell_month": pa.array(p_up[order]),
            "p_cross_sell_month": pa.array(p_cross[order]),
            "p_expansion_90d": pa.array(p90[order]),
            "label_expansion_90d": pa.array((up | cross)[order]),
            "label_upsell_90d": pa.array(up[order]),
            "label_cross_sell_90d": pa.array(cross[order]),
            "is_label_complete": pa.array((day + LABEL_DAYS <= world.cal.end_day)[order]),
        }
    )


def _join(*parts: pa.Array | str, sep: str = "") -> pa.Array:
    return pc.binary_join_element_wise(*parts, sep)


def _build_tables(world: _World) -> Iterator[tuple[str, str, pa.Table]]:
    """The CSV extracts one at a time (only one is held in memory), columns as in the contract."""
    cal, rng = world.cal, world.rng_out
    end_ts = cal.end_ts
    n = world.n
    acc_ids = world.account_ids
    cur_codes = pa.array(list(cat.CURRENCIES))
    currency = world.currency

    # --- names and domains of accounts
    p = world.name_parts
    word_a = _pick(cat.NAME_WORDS_A, p[:, 0] % len(cat.NAME_WORDS_A))
    word_b = _pick(cat.NAME_WORDS_B, p[:, 1] % len(cat.NAME_WORDS_B))
    word_c = _pick(cat.NAME_WORDS_C, p[:, 2] % len(cat.NAME_WORDS_C))
    suffix = _pick(tuple(c[3] for c in cat.COUNTRIES), world.country)
    account_name = _join(_join(word_a, word_b), word_c, suffix, sep=" ")
    domain = _join(pc.utf8_lower(_join(word_a, word_b)), pc.utf8_lower(word_c), sep="-")
    domain = _join(domain, ".example")

    # --- opportunities (needed for accounts.updated_at)
    opp = _opportunities(world)
    opp_updated = np.asarray(opp.pop("_updated"))
    opp_acc = np.asarray(opp.pop("_acc"))
    yield "crm", "opportunities", _table("crm", "opportunities", opp)

    created = world.crm_created_ts
    updated = created.copy()
    np.maximum.at(updated, opp_acc, opp_updated)
    touch = created + (rng.random(n) * (end_ts - created)).astype(np.int64)
    updated = np.where(rng.random(n) < 0.3, np.maximum(updated, touch), updated)
    yield (
        "crm",
        "accounts",
        _table(
            "crm",
            "accounts",
            {
                "account_id": acc_ids,
                "account_name": account_name,
                "industry": _pick(cat.INDUSTRIES, world.industry, world.industry_null),
                "country": _pick(tuple(c[0] for c in cat.COUNTRIES), world.country),
                "employee_count": np.where(world.employees_null, np.nan, world.employees),
                "segment": _pick(cat.SEGMENTS, world.segment),
                "owner_name": _pick(tuple(o[0] for o in cat.OWNERS), world.owner, world.owner_null),
                "owner_email": _pick(
                    tuple(o[1] for o in cat.OWNERS), world.owner, world.owner_null
                ),
                "created_at": created,
                "updated_at": np.minimum(updated, end_ts),
            },
        ),
    )

    # --- contacts
    total = int(world.contact_count.sum())
    c_acc = np.repeat(np.arange(n), world.contact_count)
    c_pos = np.arange(total) - world.contact_offset[c_acc]
    first_i = rng.integers(0, len(cat.FIRST_NAMES), total)
    last_i = rng.integers(0, len(cat.LAST_NAMES), total)
    email = _join(
        _join(
            _pick(tuple(f[1] for f in cat.FIRST_NAMES), first_i),
            _pick(tuple(f[1] for f in cat.LAST_NAMES), last_i),
            sep=".",
        ),
        domain.take(pa.array(c_acc)),
        sep="@",
    )
    email = pc.if_else(pa.array(rng.random(total) < 0.04), pa.scalar(None, pa.string()), email)
    acc_created = created[c_acc]
    c_created = np.where(
        c_pos < 2,
        acc_created + rng.integers(0, 6 * DAY, total),  # before the first purchase
        acc_created + (rng.random(total) * (end_ts - acc_created)).astype(np.int64),
    )
    c_created = np.minimum(c_created, end_ts)
    c_updated = c_created + (
        (rng.random(total) < 0.4) * rng.random(total) * (end_ts - c_created)
    ).astype(np.int64)
    contact_ids = _ids("0035g000", np.arange(total), 7)
    yield (
        "crm",
        "contacts",
        _table(
            "crm",
            "contacts",
            {
                "contact_id": contact_ids,
                "account_id": acc_ids.take(pa.array(c_acc)),
                "first_name": _pick(tuple(f[0] for f in cat.FIRST_NAMES), first_i),
                "last_name": _pick(tuple(f[0] for f in cat.LAST_NAMES), last_i),
                "email": email,
                "title": _pick(
                    cat.TITLES, rng.integers(0, len(cat.TITLES), total), rng.random(total) < 0.1
                ),
                "is_primary": c_pos == 0,
                "created_at": c_created,
                "updated_at": c_updated,
            },
        ),
    )

    # --- activities
    a = world.activities
    ts = a.get("ts")
    order = np.lexsort((a.get("acc"), ts))
    yield (
        "crm",
        "activities",
        _table(
            "crm",
            "activities",
            {
                "activity_id": _ids("00T5g000", np.arange(len(ts)), 9),
                "account_id": acc_ids.take(pa.array(a.get("acc")[order])),
                "activity_type": _pick(cat.ACTIVITY_TYPES, a.get("kind")[order]),
                "occurred_at": ts[order],
            },
        ),
    )

    # --- support tickets
    t = world.tickets
    opened = t.get("opened")
    order = np.lexsort((t.get("acc"), opened))
    yield (
        "crm",
        "support_tickets",
        _table(
            "crm",
            "support_tickets",
            {
                "ticket_id": _ids("5005g000", np.arange(len(opened)), 7),
                "account_id": acc_ids.take(pa.array(t.get("acc")[order])),
                "priority": _pick(cat.TICKET_PRIORITIES, t.get("priority")[order]),
                "category": _pick(cat.TICKET_CATEGORIES, t.get("category")[order]),
                "opened_at": opened[order],
                "closed_at": t.get("closed")[order],
                "updated_at": t.get("updated")[order],
            },
        ),
    )

    # --- NPS
    r = world.nps
    ts = r.get("ts")
    order = np.lexsort((r.get("acc"), ts))
    yield (
        "crm",
        "nps_responses",
        _table(
            "crm",
            "nps_responses",
            {
                "response_id": _ids("nps_", np.arange(len(ts)), 8),
                "account_id": acc_ids.take(pa.array(r.get("acc")[order])),
                "contact_id": contact_ids.take(pa.array(r.get("contact")[order])),
                "score": r.get("score")[order],
                "responded_at": ts[order],
            },
        ),
    )

    # --- products and plans
    yield (
        "billing",
        "products",
        _table(
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
        _table(
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
    # Core plans cap seats (one active user a day per seat bought), storage held and API calls
    # a month; add-ons limit nothing.
    limits: list[tuple[str, str, float, bool]] = []
    for p in cat.PLANS:
        if cat.PRODUCTS[p.product].family != "core":
            continue
        limits.append((p.plan_id, "active_users", 1.0, True))
        if p.storage_limit_gb is not None:
            limits.append((p.plan_id, "storage_gb", p.storage_limit_gb, False))
        if p.api_calls_limit is not None:
            limits.append((p.plan_id, "api_calls", p.api_calls_limit, False))
    yield (
        "billing",
        "plan_limits",
        _table(
            "billing",
            "plan_limits",
            {
                "plan_id": [x[0] for x in limits],
                "metric": [x[1] for x in limits],
                "limit_value": [x[2] for x in limits],
                "per_unit": [x[3] for x in limits],
            },
        ),
    )

    # --- subscriptions and their changes
    subs = world.subs
    ns = subs.n
    s_acc, s_prod, s_period = subs.acc[:ns], subs.prod[:ns], subs.period[:ns]
    s_start, s_cancel = subs.start_ts[:ns], subs.cancel_ts[:ns]
    ch_sub, ch_ts, ch_plan, ch_qty, unit = _versions(world)
    ch_cur = currency[s_acc[ch_sub]]
    customer_ids = _ids("cus_", np.arange(n), 6)
    sub_ids = _ids("sub_", np.arange(ns), 7)
    yield (
        "billing",
        "subscription_changes",
        _table(
            "billing",
            "subscription_changes",
            {
                "change_id": _ids("chg_", np.arange(len(ch_ts)), 8),
                "subscription_id": sub_ids.take(pa.array(ch_sub)),
                "effective_at": ch_ts,
                "plan_id": _pick(tuple(x.plan_id for x in cat.PLANS), ch_plan),
                "quantity": ch_qty,
                "unit_amount": unit,
                "currency": cur_codes.take(pa.array(ch_cur)),
            },
        ),
    )
    s_updated = np.maximum(s_start, s_cancel)
    np.maximum.at(s_updated, ch_sub, ch_ts)
    yield (
        "billing",
        "subscriptions",
        _table(
            "billing",
            "subscriptions",
            {
                "subscription_id": sub_ids,
                "customer_id": customer_ids.take(pa.array(s_acc)),
                "product_id": _pick(tuple(x.product_id for x in cat.PRODUCTS), s_prod),
                "billing_period_months": s_period,
                "term_months": np.full(ns, 12),
                "started_at": s_start,
                "canceled_at": s_cancel,
                "updated_at": s_updated,
            },
        ),
    )
    cust_created = np.full(n, NEVER * DAY, np.int64)
    np.minimum.at(cust_created, s_acc, s_start)
    cust_updated = cust_created.copy()
    np.maximum.at(cust_updated, s_acc, s_updated)
    yield (
        "billing",
        "customers",
        _table(
            "billing",
            "customers",
            {
                "customer_id": customer_ids,
                "crm_account_id": acc_ids,
                "currency": cur_codes.take(pa.array(currency)),
                "created_at": cust_created,
                "updated_at": cust_updated,
            },
        ),
    )
    yield (
        "billing",
        "invoices",
        _invoices(world, (ch_sub, ch_ts, ch_qty, unit), customer_ids, sub_ids),
    )


def _versions(world: _World) -> tuple[I64, I64, I64, I64, F64]:
    """Subscription versions in billing order (by time, then subscription): subscription, time,
    plan, seats and the unit price per billing period in the account's currency."""
    ch = world.changes
    sub, ts, plan, qty = ch.get("sub"), ch.get("ts"), ch.get("plan"), ch.get("qty")
    order = np.lexsort((sub, ts))
    sub, ts, plan, qty = sub[order], ts[order], plan[order], qty[order]
    subs = world.subs
    price_usd = _PLAN_PRICE[plan] * subs.period[sub] * (1 - subs.discount[sub])
    return sub, ts, plan, qty, _money(price_usd, world.currency[subs.acc[sub]])


def _build_mrr_truth(world: _World) -> pa.Table:
    """What every account pays per month at each month end, from the simulation's own state.

    One row per account per month with MRR at the month's end (the last month ends at the
    end of the export day), in the account's billing currency: for every subscription in
    service right before that instant, seats x unit price / billing period of the version in
    force. Accounts without MRR at a month end have no row for it.
    """
    cal, subs = world.cal, world.subs
    ns = subs.n
    start, cancel = subs.start_ts[:ns], subs.cancel_ts[:ns]
    ch_sub, ch_ts, _, ch_qty, unit = _versions(world)
    mrr_of_version = ch_qty * unit / subs.period[ch_sub]
    span = np.int64(1 << 40)
    key = ch_sub * span + ch_ts
    by_key = np.argsort(key, kind="stable")
    sorted_key = key[by_key]
    ends = np.append(cal.start[1:], cal.end_day + 1) * DAY
    parts: list[tuple[I64, I64, F64]] = []
    for m, end in enumerate(ends):
        held = np.flatnonzero((start < end) & ((cancel < 0) | (cancel >= end)))
        # the last version that started before the instant (the latest wins on a tie)
        pos = np.searchsorted(sorted_key, held * span + end, side="left") - 1
        version = by_key[pos]
        assert (ch_sub[version] == held).all(), "a subscription in service without a version"
        acc = subs.acc[held]
        total = np.bincount(acc, weights=mrr_of_version[version], minlength=world.n)
        has = np.flatnonzero(np.bincount(acc, minlength=world.n) > 0).astype(np.int64)
        parts.append((has, np.full(len(has), m, np.int64), np.asarray(total[has], np.float64)))
    acc = np.concatenate([p[0] for p in parts])
    month = np.concatenate([p[1] for p in parts])
    mrr = np.concatenate([p[2] for p in parts])
    return pa.table(
        {
            "account_id": world.account_ids.take(pa.array(acc)),
            "month_start": pa.array(cal.start[month].astype(np.int32), pa.date32()),
            "currency": pa.array(list(cat.CURRENCIES)).take(pa.array(world.currency[acc])),
            "mrr": pa.array(mrr),
        }
    )


def _opportunities(world: _World) -> dict[str, Any]:
    """One won opportunity per purchase, renewals won or lost, and some lost or open deals."""
    cal, rng = world.cal, world.rng_out
    end_ts = cal.end_ts
    parts: list[
        tuple[I64, I64, I64, I64, NDArray[np.bool_], F64]
    ] = []  # acc kind created closed won mrr

    def lead(ts: I64, lo: int, hi: int, acc: I64) -> I64:
        c = ts - rng.integers(lo * DAY, hi * DAY, len(ts))
        return np.maximum(c, world.crm_created_ts[acc])

    ev = world.events
    acc, ts, kind = ev.get("acc"), ev.get("ts"), ev.get("kind")
    parts.append(
        (
            acc,
            kind,
            lead(ts, 5, 28, acc),
            ts,
            np.ones(len(acc), bool),
            ev.get("delta_mrr", np.float64),
        )
    )
    nb = world.new_business
    acc, ts = nb.get("acc"), nb.get("ts")
    parts.append(
        (
            acc,
            np.zeros_like(acc),
            lead(ts, 14, 90, acc),
            ts,
            np.ones(len(acc), bool),
            nb.get("mrr", np.float64),
        )
    )
    rn = world.renewals
    acc, ts = rn.get("acc"), rn.get("ts")
    parts.append(
        (
            acc,
            np.full_like(acc, 3),
            lead(ts, 45, 75, acc),
            ts,
            rn.get("won", bool),
            rn.get("mrr", np.float64),
        )
    )
    # renewals coming up after the export: open opportunities
    active = np.flatnonzero(world.status == 1)
    core = world.core_sub[active]
    nxt = _next_anniversary(world.subs.start_ts[core] // DAY, np.full(len(active), cal.end_day), 12)
    created = nxt * DAY - rng.integers(45 * DAY, 75 * DAY, len(active))
    soon = created <= end_ts
    acc = active[soon]
    plan = _PLAN_OF[0, world.tier[acc] - 1]
    mrr = world._mrr(core[soon], plan, world.seats[acc])
    parts.append(
        (
            acc,
            np.full_like(acc, 3),
            created[soon],
            np.full(len(acc), NULL_TS),
            np.zeros(len(acc), bool),
            mrr,
        )
    )
    lo = world.lost_opps
    acc = lo.get("acc")
    parts.append(
        (
            acc,
            lo.get("kind"),
            lo.get("created"),
            lo.get("closed"),
            np.zeros(len(acc), bool),
            lo.get("mrr", np.float64),
        )
    )

    acc = np.concatenate([x[0] for x in parts])
    kind = np.concatenate([x[1] for x in parts])
    created = np.concatenate([x[2] for x in parts])
    closed = np.concatenate([x[3] for x in parts])
    won = np.concatenate([x[4] for x in parts])
    mrr = np.concatenate([x[5] for x in parts])
    is_open = (closed < 0) | (closed > end_ts)
    closed = np.where(is_open, NULL_TS, closed)
    stage = np.where(is_open, 0, np.where(won, 1, 2))
    updated = np.where(
        is_open, created + (rng.random(len(acc)) * (end_ts - created)).astype(np.int64), closed
    )
    order = np.lexsort((acc, created))
    cur = world.currency[acc]
    return {
        "opportunity_id": _ids("0065g000", np.arange(len(acc)), 7),
        "account_id": world.account_ids.take(pa.array(acc[order])),
        "opportunity_type": _pick(cat.OPPORTUNITY_TYPES, kind[order]),
        "stage": _pick(cat.OPPORTUNITY_STAGES, stage[order]),
        "amount": _money(np.abs(mrr) * 12, cur)[order],
        "currency": pa.array(list(cat.CURRENCIES)).take(pa.array(cur[order])),
        "created_at": created[order],
        "closed_at": closed[order],
        "updated_at": updated[order],
        "_updated": updated[order],
        "_acc": acc[order],
    }


def _invoices(
    world: _World,
    changes: tuple[I64, I64, I64, F64],
    customer_ids: pa.Array,
    sub_ids: pa.Array,
) -> pa.Table:
    """One invoice per subscription per billing period issued inside the window."""
    cal, rng = world.cal, world.rng_out
    end_ts = cal.end_ts
    subs = world.subs
    ns = subs.n
    start_ts, period = subs.start_ts[:ns], subs.period[:ns]
    cancel = subs.cancel_ts[:ns]
    start_day = start_ts // DAY
    last_day = np.where(cancel >= 0, cancel // DAY - 1, cal.end_day)
    last_day = np.minimum(last_day, cal.end_day)
    k_first = -(-np.maximum(cal.first_month - _month_of(start_day), 0) // period)
    k_last = (_month_of(last_day) - _month_of(start_day)) // period
    k_last = np.where(_add_months(start_day, k_last * period) > last_day, k_last - 1, k_last)
    count = np.maximum(k_last - k_first + 1, 0)
    sub = np.repeat(np.arange(ns), count)
    k = k_first[sub] + (np.arange(len(sub)) - np.repeat(np.cumsum(count) - count, count))
    issue_day = _add_months(start_day[sub], k * period[sub])
    issued = issue_day * DAY + start_ts[sub] % DAY

    ch_sub, ch_ts, ch_qty, unit = changes
    span = np.int64(1 << 40)
    key = ch_sub * span + ch_ts
    by_key = np.argsort(key, kind="stable")
    pos = by_key[np.searchsorted(key[by_key], sub * span + issued, side="right") - 1]
    amount = ch_qty[pos] * unit[pos]

    acc = subs.acc[sub]
    month_idx = np.clip(_month_of(issue_day) - cal.first_month, 0, cal.months - 1)
    h = world.h_hist[acc, month_idx]
    m = len(sub)
    late = rng.random(m) < _sigmoid(-2.8 - 1.5 * h)
    never = rng.random(m) < _sigmoid(-6.0 - 1.5 * h)
    delay = np.where(late, 31 * DAY + rng.exponential(25 * DAY, m), rng.uniform(0, 28 * DAY, m))
    paid = issued + delay.astype(np.int64)
    due = issued + 30 * DAY
    void = rng.random(m) < 0.005
    unpaid = never | void | (paid > end_ts)
    uncollectible = never & ~void & (due + 90 * DAY <= end_ts) & (world.status[acc] == 2)
    status = np.where(void, 2, np.where(uncollectible, 3, np.where(unpaid, 1, 0)))
    updated = np.where(
        status == 0,
        paid,
        np.where(status == 2, issued + 2 * DAY, np.where(status == 3, due + 90 * DAY, issued)),
    )
    order = np.lexsort((sub, issued))
    cur = world.currency[acc]
    return _table(
        "billing",
        "invoices",
        {
            "invoice_id": _ids("in_", np.arange(m), 8),
            "customer_id": customer_ids.take(pa.array(acc[order])),
            "subscription_id": sub_ids.take(pa.array(sub[order])),
            "issued_at": issued[order],
            "due_at": due[order],
            "paid_at": np.where(unpaid, NULL_TS, paid)[order],
            "amount_due": amount[order],
            "currency": pa.array(list(cat.CURRENCIES)).take(pa.array(cur[order])),
            "status": _pick(cat.INVOICE_STATUSES, status[order]),
            "updated_at": np.minimum(updated, end_ts)[order],
        },
    )
