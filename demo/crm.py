"""The customer-success side of a demo month: support tickets, NPS surveys, activities and QBRs,
and sales opportunities that do not close. Shared by every demo business; each says how its
accounts drive the rates (`CrmDrivers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from demo.common import DAY, F64, I64, NULL_TS, Calendar, Rows
from demo.extracts import FEATURE_REQUEST, TICKET_CATEGORIES


@dataclass(frozen=True)
class CrmDrivers:
    """Per-account rates of one month (arrays over all accounts)."""

    ticket_scale: F64  # monthly ticket rate relative to 0.12 (bigger teams file more)
    nps_response: F64  # chance that a surveyed account answers
    nps_second: F64  # chance that a second contact answers too
    activity_base: F64  # e-mails, calls and meetings a month at average health
    lost_deal_mrr: F64  # MRR named on a deal that does not close


class CrmWorld(Protocol):
    cal: Calendar
    n: int
    rng_crm: np.random.Generator
    status: NDArray[np.int8]
    svc_start: I64
    svc_end: I64
    phase: I64  # survey / QBR quarter phase
    high_touch: NDArray[np.bool_]
    contact_offset: I64
    p_up: F64
    p_cross: F64
    urgent_acc: I64
    urgent_close: I64
    last_feature_req: I64
    last_promoter: I64
    last_detractor: I64
    last_qbr: I64
    tickets: Rows
    nps: Rows
    activities: Rows
    lost_opps: Rows

    def health(self) -> F64: ...


def crm_month(world: CrmWorld, m: int, drivers: CrmDrivers) -> None:
    """Record month `m`'s tickets, survey answers, activities and lost deals."""
    cal, rng = world.cal, world.rng_crm
    n = world.n
    ms, ml = int(cal.start[m]), int(cal.last[m])
    nd = ml - ms + 1
    first = np.maximum(world.svc_start, ms)
    stop = np.minimum(world.svc_end, ml + 1)
    active_days = np.maximum(stop - first, 0)
    share = active_days / nd
    h = world.health()
    month = cal.first_month + m

    def when(acc: I64, hours: tuple[int, int] = (8, 18)) -> I64:
        d = first[acc] + (rng.random(len(acc)) * active_days[acc]).astype(np.int64)
        return d * DAY + rng.integers(hours[0] * 3600, hours[1] * 3600, len(acc))

    # support tickets
    rate = 0.12 * drivers.ticket_scale * np.exp(-0.5 * h) * share
    acc = np.repeat(np.arange(n), rng.poisson(rate))
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
    priority = (rng.random(len(acc))[:, None] * p.sum(axis=1)[:, None] > np.cumsum(p, axis=1)).sum(
        axis=1
    )
    category = rng.choice(len(TICKET_CATEGORIES), len(acc), p=[0.3, 0.25, 0.08, 0.15, 0.12, 0.1])
    median_days = np.array([9.0, 6.0, 3.5, 2.5])[priority]
    dur = (median_days * DAY * rng.lognormal(0, 0.9, len(acc))).astype(np.int64) + 600
    closed = opened + dur
    still_open = closed > cal.end_ts
    touched = opened + (rng.random(len(acc)) * (cal.end_ts - opened)).astype(np.int64)
    updated = np.where(still_open, np.minimum(touched, opened + dur), closed)
    closed = np.where(still_open, NULL_TS, closed)
    world.tickets.add(
        acc=acc, priority=priority, category=category, opened=opened, closed=closed, updated=updated
    )
    urgent = priority == 3
    keep = (world.urgent_close < 0) | (world.urgent_close > ms * DAY)
    world.urgent_acc = np.concatenate([world.urgent_acc[keep], acc[urgent]])
    world.urgent_close = np.concatenate([world.urgent_close[keep], closed[urgent]])
    fr = category == FEATURE_REQUEST
    np.maximum.at(world.last_feature_req, acc[fr], opened[fr] // DAY)

    # NPS survey once a quarter per account (its phase); some contacts respond
    surveyed = (active_days > 0) & ((month + world.phase) % 3 == 0)
    n_resp = (rng.random(n) < drivers.nps_response) * (1 + (rng.random(n) < drivers.nps_second))
    acc = np.repeat(np.arange(n), np.where(surveyed, n_resp, 0))
    ts = when(acc)
    contact = world.contact_offset[acc] + rng.integers(0, 2, len(acc))
    score = np.clip(np.round(7.2 + 1.8 * h[acc] + rng.normal(0, 1.3, len(acc))), 0, 10).astype(
        np.int64
    )
    world.nps.add(acc=acc, contact=contact, score=score, ts=ts)
    np.maximum.at(world.last_promoter, acc[score >= 9], ts[score >= 9] // DAY)
    np.maximum.at(world.last_detractor, acc[score <= 6], ts[score <= 6] // DAY)

    # activities: more for high-touch accounts; quarterly business reviews
    base = drivers.activity_base * np.exp(0.25 * h) * share
    acc = np.repeat(np.arange(n), rng.poisson(base))
    kind = rng.choice(3, len(acc), p=[0.55, 0.3, 0.15])
    qbr_acc = np.flatnonzero(
        world.high_touch
        & (active_days > 0)
        & ((month + world.phase) % 3 == 1)
        & (rng.random(n) < 0.85)
    )
    acc = np.concatenate([acc, qbr_acc])
    kind = np.concatenate([kind, np.full(len(qbr_acc), 3)])
    ts = when(acc)
    world.activities.add(acc=acc, kind=kind, ts=ts)
    np.maximum.at(world.last_qbr, acc[kind == 3], ts[kind == 3] // DAY)

    # sales opportunities that do not close: interest without a purchase
    p_lost = 0.8 * (world.p_up + world.p_cross) + 0.01
    acc = np.flatnonzero((world.status == 1) & (active_days > 0) & (rng.random(n) < p_lost))
    created = when(acc)
    kind = np.where(
        rng.random(len(acc)) * (world.p_up[acc] + world.p_cross[acc]) < world.p_up[acc], 1, 2
    )
    closed = created + rng.integers(7 * DAY, 60 * DAY, len(acc))
    world.lost_opps.add(
        acc=acc, kind=kind, created=created, closed=closed, mrr=drivers.lost_deal_mrr[acc]
    )
