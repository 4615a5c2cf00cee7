"""One month of the flat-tier business: latent states and demand move, then churn and renewals,
expansion (tier upgrades, more packs, new add-ons), contraction, reactivation and new accounts.

Tier changes of term contracts take effect at the renewal instant (the anniversary of the
subscription's start, same time of day); monthly contracts change on any day of the month.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from demo import flat_tiers_catalog as cat
from demo.common import DAY, I64, NEVER, B, anniversary_in_month, sigmoid

if TYPE_CHECKING:
    from demo.flat_tiers import FlatTiersWorld


def step(world: FlatTiersWorld, m: int) -> None:
    """Month `m` of the simulation."""
    cal, rng, n = world.cal, world.rng, world.n
    ms, ml = int(cal.start[m]), int(cal.last[m])
    month = cal.first_month + m

    world.evolve_latents()
    on = world.status == 1
    grow = np.exp(np.where(on, world.g, 0.0))
    world.wanted *= grow
    world.email_d *= grow * np.exp(np.where(on, world.email_drift, 0.0))
    connect = on & (rng.random(n) < 0.03)
    world.integrations += connect
    world.api_d = world.api_d * grow + connect * cat.TIER_LIMITS[2, cat.API] * rng.uniform(
        0.05, 0.25, n
    )
    world.wf_d *= grow * np.exp(np.where(on, 0.01, 0.0))
    world.records_prev = world.records.copy()
    grown = world.records * (1 + world.records_rate + 0.5 * np.maximum(world.g, 0))
    world.tier_before, world.packs_before = world.tier.copy(), world.packs.copy()
    world.tier_change_day = np.full(n, NEVER, np.int64)
    world.pack_change_day = np.full((n, cat.N_ADDONS), NEVER, np.int64)

    active0 = (world.status == 1) & (world.svc_start < ms)
    _churn(world, m, ml, month, active0)
    stay = active0 & (world.status == 1)
    changed = _expand(world, ms, ml, stay)
    _contract(world, ms, ml, month, stay, changed)
    _reactivate(world, m, ms, ml)
    world.start_accounts(np.flatnonzero((world.status == 0) & (world.first_day <= ml)))
    # records are held up to a little over the limit (the product blocks new ones beyond)
    cap = world.limits()[:, cat.RECORDS] * rng.uniform(1.0, 1.03, n)
    keep = (world.status == 1) & (world.svc_start < ms)
    world.records = np.where(keep, np.minimum(grown, np.maximum(cap, world.records)), world.records)
    world.h_hist[:, m] = world.health()


def _rand_day(world: FlatTiersWorld, ms: int, ml: int, k: int) -> tuple[I64, I64]:
    day = ms + world.rng.integers(0, ml - ms + 1, k)
    return day, day * DAY + world.rng.integers(7 * 3600, 19 * 3600, k)


def _renewal_instant(world: FlatTiersWorld, sub: I64, day: I64) -> I64:
    """The instant a subscription renews on `day`: its start's time of day."""
    return np.asarray(day * DAY + world.subs.start_ts[sub] % DAY, np.int64)


def _churn(world: FlatTiersWorld, m: int, ml: int, month: int, active0: B) -> None:
    rng = world.rng
    core = np.maximum(world.core_sub, 0)
    term = world.subs.term[core]
    hit, rday = anniversary_in_month(world.subs.start_ts[core] // DAY, month, term)
    renewing = np.flatnonzero(active0 & hit & (rday <= ml))
    h = world.health()
    logit = (
        np.where(term > 1, -2.3, -4.3)
        - 1.1 * h
        - 1.4 * (world.seat_util < 0.3)
        + 0.8 * world.detractor_now
        + 0.8 * world.urgent_now
    )
    churn = rng.random(world.n) < sigmoid(logit)
    churned = renewing[churn[renewing]]
    r = renewing[term[renewing] > 1]  # term contracts have a renewal deal in the CRM
    world.renewals.add(
        acc=r, sub=world.core_sub[r], ts=rday[r] * DAY, won=~churn[r], mrr=world.core_mrr(r)
    )
    # rare cancellation in the middle of a term by very unhealthy accounts
    mid = np.flatnonzero(active0 & ~hit & (term > 1) & (h < -1.2) & (rng.random(world.n) < 0.01))
    mid_day, _ = _rand_day(world, int(world.cal.start[m]), ml, len(mid))
    acc = np.concatenate([churned, mid])
    day = np.concatenate([rday[churned], mid_day])
    ts = day * DAY
    world.subs.cancel_ts[world.core_sub[acc]] = ts
    for col in range(cat.N_ADDONS):
        held = world.addon_sub[acc, col] >= 0
        world.subs.cancel_ts[world.addon_sub[acc[held], col]] = ts[held]
        world.addon_sub[acc, col] = -1
        world.packs[acc, col] = 0
    world.status[acc] = 2
    world.svc_end[acc] = day
    world.churn_month[acc] = m


def _packs_needed(world: FlatTiersWorld, acc: I64, col: int, target: float) -> I64:
    """Packs that bring the add-on's metric to `target` of its limit (0 if the tier does)."""
    metric = cat.ADDONS[col].metric
    use = world.usage_now()[acc, metric]
    if metric == cat.EMAILS:
        use = world.email_d[acc]  # what they want to send, not what the quota let through
    base = cat.TIER_LIMITS[world.tier[acc], metric]
    return np.maximum(np.ceil((use / target - base) / cat.PACK[col]), 0).astype(np.int64)


def _expand(world: FlatTiersWorld, ms: int, ml: int, stay: B) -> B:
    """Tier upgrades, more packs and new add-ons; returns the (account, product) changed."""
    rng, n = world.rng, world.n
    changed = np.zeros((n, 1 + cat.N_ADDONS), bool)
    renew, rday = world.renewal_month(ms - 1, 1)

    # --- upsell: a higher tier, at the renewal for term contracts renewing this month
    acc = np.flatnonzero(stay & (rng.random(n) < world.p_tier))
    day, ts = _rand_day(world, ms, ml, len(acc))
    sub = world.core_sub[acc]
    at_renewal = renew[acc] & (rday[acc] <= ml)
    day = np.where(at_renewal, rday[acc], day)
    ts = np.where(at_renewal, _renewal_instant(world, sub, rday[acc]), ts)
    old = world.tier[acc]
    nxt = np.minimum(old + 1, cat.N_TIERS)
    x = (world.wanted * world.frac())[acc]
    jump = x > 1.3 * cat.TIER_LIMITS[nxt, cat.SEATS]
    new = np.minimum(old + 1 + jump, cat.N_TIERS)
    old_plan, new_plan = world.core_plan(acc, old), world.core_plan(acc, new)
    one = np.ones_like(acc)
    delta = world.price(sub, new_plan, one) - world.price(sub, old_plan, one)
    world.changes.add(sub=sub, ts=ts, plan=new_plan, qty=1, kind=1)
    world.events.add(acc=acc, day=day, ts=ts, kind=1, sub=sub, delta_mrr=delta)
    world.tier[acc] = new
    world.last_upsell[acc] = day
    world.tier_change_day[acc] = day
    changed[acc, 0] = True

    for col in range(cat.N_ADDONS):
        # --- upsell: more packs of a held add-on
        held = world.addon_sub[:, col] >= 0
        acc = np.flatnonzero(stay & held & (rng.random(n) < world.p_pack[:, col]))
        day, ts = _rand_day(world, ms, ml, len(acc))
        sub = world.addon_sub[acc, col]
        extra = np.clip(_packs_needed(world, acc, col, 0.7) - world.packs[acc, col], 1, 40)
        qty = world.packs[acc, col] + extra
        plan = world.addon_plan(acc, col)
        world.changes.add(sub=sub, ts=ts, plan=plan, qty=qty, kind=1)
        delta = world.price(sub, plan, extra)
        world.events.add(acc=acc, day=day, ts=ts, kind=1, sub=sub, delta_mrr=delta)
        world.packs[acc, col] = qty
        world.last_upsell[acc] = np.maximum(world.last_upsell[acc], day)
        world.pack_change_day[acc, col] = day
        changed[acc, 1 + col] = True

        # --- cross-sell: an add-on not held
        acc = np.flatnonzero(stay & ~held & (rng.random(n) < world.p_new[:, col]))
        day, ts = _rand_day(world, ms, ml, len(acc))
        packs = np.clip(_packs_needed(world, acc, col, 0.7), 1, 40)
        world.new_addon(acc, col, ts, packs, np.ones(len(acc), bool))
        world.last_cross[acc] = day
        changed[acc, 1 + col] = True
    return changed


def _contract(world: FlatTiersWorld, ms: int, ml: int, month: int, stay: B, changed: B) -> None:
    """Lower tiers for accounts that fit one (at renewal), fewer packs when idle."""
    rng, n = world.rng, world.n
    renew, rday = world.renewal_month(ms - 1, 1)
    term = world.subs.term[np.maximum(world.core_sub, 0)] > 1
    h = world.health()
    lower = np.maximum(world.tier - 1, 1)
    lim = cat.TIER_LIMITS[lower].copy()
    lim[:, cat.ADDON_METRIC] += world.packs * cat.PACK
    want = np.column_stack(
        [world.wanted * world.frac(), world.records, world.email_d, world.api_d, world.wf_d]
    )
    fits = (world.tier > 1) & (want <= 0.75 * lim).all(axis=1)
    p_down = np.where(term, 0.35 * (renew & (rday <= ml)), 0.05) * (1.0 + (h < -0.5))
    acc = np.flatnonzero(stay & ~changed[:, 0] & fits & (rng.random(n) < p_down))
    day, ts = _rand_day(world, ms, ml, len(acc))
    sub = world.core_sub[acc]
    at_renewal = term[acc]
    day = np.where(at_renewal, rday[acc], day)
    ts = np.where(at_renewal, _renewal_instant(world, sub, rday[acc]), ts)
    world.tier[acc] -= 1
    world.changes.add(sub=sub, ts=ts, plan=world.core_plan(acc, world.tier[acc]), qty=1, kind=2)
    world.tier_change_day[acc] = day

    for col in range(cat.N_ADDONS):
        s = world.addon_sub[:, col]
        start = world.subs.start_ts[np.maximum(s, 0)] // DAY
        hit, aday = anniversary_in_month(start, month, world.subs.term[np.maximum(s, 0)])
        due = stay & (s >= 0) & hit & (aday <= ml) & ~changed[:, 1 + col]
        acc = np.flatnonzero(due)
        needed = _packs_needed(world, acc, col, 0.8)
        fewer = (needed < world.packs[acc, col]) & (rng.random(len(acc)) < 0.3)
        acc, needed = acc[fewer], needed[fewer]
        ts = _renewal_instant(world, s[acc], aday[acc])
        drop = needed == 0
        world.subs.cancel_ts[s[acc[drop]]] = aday[acc[drop]] * DAY
        world.addon_sub[acc[drop], col] = -1
        keep = ~drop
        world.changes.add(
            sub=s[acc[keep]], ts=ts[keep], plan=world.addon_plan(acc[keep], col),
            qty=needed[keep], kind=2,
        )  # fmt: skip
        world.packs[acc, col] = needed
        world.pack_change_day[acc, col] = aday[acc]


def _reactivate(world: FlatTiersWorld, m: int, ms: int, ml: int) -> None:
    """A few churned accounts come back with a new core subscription (new business)."""
    rng = world.rng
    acc = np.flatnonzero(
        (world.status == 2) & (m - world.churn_month >= 3) & (rng.random(world.n) < 0.012)
    )
    if len(acc) == 0:
        return
    day, ts = _rand_day(world, ms, ml, len(acc))
    world.tier[acc] = np.maximum(1, world.tier[acc] - (rng.random(len(acc)) < 0.5))
    world.tier_change_day[acc] = day
    world.a[acc] = world.mu_a[acc] - 0.6
    # the old records were deleted after the churn: a returning customer imports a cleaned list
    fresh = cat.TIER_LIMITS[world.tier[acc], cat.RECORDS] * rng.uniform(0.3, 0.7, len(acc))
    world.records[acc] = world.records_prev[acc] = np.minimum(world.records[acc], fresh)
    world.new_core(acc, ts, world.tier[acc])
    world.status[acc] = 1
    world.svc_start[acc] = day
    world.svc_end[acc] = NEVER
