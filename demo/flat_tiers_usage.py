"""Daily product usage of the flat-tier business: one row per account, day and metric.

From each account's state in the month (users who want a seat, demand against the monthly quotas,
records held, apps connected) and the limits in force on each day:

- `active_seats`: users active on a day, at most the tier's seats (weekend dip);
- `records_stored`: the level of records held, moving from the month's start to its end;
- `marketing_emails`, `api_requests`, `workflow_runs`: the month's demand spread over the days,
  the running total cut at the monthly quota (nothing goes out past it; nothing on the entry
  tier for the API and workflows);
- ten activity counts (`contacts_created`, `deals_won`, ...): Poisson counts per active seat at
  each metric's own rate and the account's own intensity;
- `forms_submitted`: web forms, about one per 150 e-mails sent;
- `modules_used` (distinct modules on a day, 0 without active seats), `integrations_connected`.

Sum metrics have no row on days without events; the others have one every day of service.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from demo import flat_tiers_catalog as cat
from demo.common import F64, USAGE_CHUNK, USAGE_SCHEMA

if TYPE_CHECKING:
    from demo.flat_tiers import FlatTiersWorld

_RATES = np.array([r for _, r in cat.ACTIVITY_METRICS])
_IS_SUM = np.array([m in cat.SUM_METRICS for m in cat.USAGE_METRICS])
_METRIC_NAMES = pa.array(list(cat.USAGE_METRICS))


def usage_chunks(world: FlatTiersWorld, m: int) -> Iterator[pa.Table]:
    """Usage rows of month `m`, in chunks of accounts (row order: account, day, metric)."""
    cal = world.cal
    ms, ml = int(cal.start[m]), int(cal.last[m])
    first = np.maximum(world.svc_start, ms)
    stop = np.minimum(world.svc_end, ml + 1)
    active = np.flatnonzero(first < stop)
    for lo in range(0, len(active), USAGE_CHUNK):
        acc = active[lo : lo + USAGE_CHUNK]
        yield _chunk(world, acc, ms, ml, first[acc], stop[acc])


def _spread(rng: np.random.Generator, total: F64, shape: F64, sd: float, quota: F64) -> F64:
    """A month's `total` spread over its days by `shape` with noise. The running total stops at
    each day's monthly `quota` (accounts x days): nothing goes out past it, and nothing at all on
    a day whose plan includes none."""
    k, nd = quota.shape
    w = shape[None, :] * rng.lognormal(0, sd, (k, nd))
    daily = np.round(total[:, None] * w / (shape.mean() * np.exp(sd**2 / 2) * nd))
    daily = np.where(quota > 0, daily, 0.0)
    sent = np.maximum.accumulate(np.minimum(np.cumsum(daily, axis=1), quota), axis=1)
    return np.asarray(np.diff(sent, axis=1, prepend=0.0), np.float64)


def _chunk(
    world: FlatTiersWorld, acc: np.ndarray, ms: int, ml: int, first: np.ndarray, stop: np.ndarray
) -> pa.Table:
    rng = world.rng_usage
    nd = ml - ms + 1
    k = len(acc)
    days = ms + np.arange(nd)
    mask = (days[None, :] >= first[:, None]) & (days[None, :] < stop[:, None])
    weekend = ((days + 3) % 7) >= 5  # 1970-01-01 was a Thursday
    lim = world.day_limits(acc, days)  # (accounts, days, limited metrics)

    wanted = (world.wanted * world.frac())[acc]
    wk = np.where(weekend[None, :], world.weekend[acc, None], 1.0)
    seats = np.minimum(
        np.round(wanted[:, None] * wk * rng.lognormal(0, 0.07, (k, nd))), lim[:, :, cat.SEATS]
    )

    lam = seats[:, :, None] * _RATES[None, None, :] * world.intensity[acc, None, :]
    acts = rng.poisson(lam).astype(np.float64)

    emails, api, flows = (
        _spread(rng, demand[acc], shape, sd, lim[:, :, metric])
        for metric, shape, sd, demand in (
            (cat.EMAILS, np.where(weekend, 0.05, 1.0), 0.6, world.email_d),
            (cat.API, np.where(weekend, 0.4, 1.2), 0.25, world.api_d),
            (cat.WORKFLOWS, np.where(weekend, 0.6, 1.1), 0.2, world.wf_d),
        )
    )
    forms = rng.poisson(emails / 150.0 + 0.1 * world.integrations[acc, None]).astype(np.float64)

    frac = (np.arange(nd) + 1) / nd
    r0, r1 = world.records_prev[acc, None], world.records[acc, None]
    records = np.round((r0 + (r1 - r0) * frac[None, :]) * rng.lognormal(0, 0.002, (k, nd)))
    modules = world.modules()[acc, None] * np.where(weekend, 0.6, 1.0)[None, :]
    modules = np.round(modules * rng.lognormal(0, 0.12, (k, nd)))
    modules = np.where(seats > 0, np.clip(modules, 1, cat.MAX_MODULES), 0.0)
    integrations = np.broadcast_to(world.integrations[acc, None], (k, nd))

    values = np.concatenate(
        [
            np.stack([seats, records, emails, api, flows], axis=-1),
            acts,
            np.stack([forms, modules, integrations], axis=-1),
        ],
        axis=-1,
    )
    keep = mask[:, :, None] & ((values > 0) | ~_IS_SUM[None, None, :])
    row_acc, row_day, row_metric = np.nonzero(keep)
    return pa.table(
        {
            "account_id": world.account_ids.take(pa.array(acc[row_acc])),
            "usage_date": pa.array((ms + row_day).astype(np.int32), pa.date32()),
            "metric": _METRIC_NAMES.take(pa.array(row_metric)),
            "value": pa.array(values[keep], pa.float64()),
        },
        schema=USAGE_SCHEMA,
    )
