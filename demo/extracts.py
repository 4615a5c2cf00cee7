"""The CRM and billing extracts every demo business writes, from what its simulation recorded.

A business's world (`World`) holds its accounts, the record stores its simulation filled
(subscriptions and their versions, purchases, renewals, tickets, surveys, activities, lost
deals) and knows its own prices and currency; `build_tables` turns them into the contract's
CSV tables, one at a time. The business adds its price list (products, plans, plan limits).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from demo.common import (
    DAY,
    F64,
    I64,
    NEVER,
    NULL_TS,
    B,
    Calendar,
    Rows,
    Subs,
    add_months,
    extract_table,
    ids,
    join_text,
    month_of,
    next_anniversary,
    pick,
    sigmoid,
)

Tables = Iterator[tuple[str, str, pa.Table]]

OPPORTUNITY_TYPES: tuple[str, ...] = ("new_business", "upsell", "cross_sell", "renewal")
OPPORTUNITY_STAGES: tuple[str, ...] = ("open", "closed_won", "closed_lost")
INVOICE_STATUSES: tuple[str, ...] = ("paid", "open", "void", "uncollectible")
ACTIVITY_TYPES: tuple[str, ...] = ("email", "call", "meeting", "qbr")
TICKET_PRIORITIES: tuple[str, ...] = ("low", "normal", "high", "urgent")
TICKET_CATEGORIES: tuple[str, ...] = (
    "bug",
    "how_to",
    "billing",
    "feature_request",
    "integration",
    "performance",
)
FEATURE_REQUEST = 3


@dataclass(frozen=True)
class CrmNames:
    """The words a business's CRM is written in: company names, people, titles, owners."""

    words_a: tuple[str, ...]
    words_b: tuple[str, ...]
    words_c: tuple[str, ...]
    suffixes: tuple[str, ...]  # legal suffix ("Inc.", "K.K."), indexed by World.suffix
    first_names: tuple[tuple[str, str], ...]  # (display, ascii for e-mail)
    last_names: tuple[tuple[str, str], ...]
    titles: tuple[str, ...]


class World(Protocol):
    """What `build_tables` reads from a business's simulation."""

    cal: Calendar
    n: int
    rng_out: np.random.Generator  # extract details only, so the simulation is unaffected
    account_ids: pa.Array
    crm_created_ts: I64
    name_parts: NDArray[np.int64]  # (n, 3) random words of the company name
    suffix: I64  # index into CrmNames.suffixes
    contact_count: I64
    contact_offset: I64
    status: NDArray[np.int8]  # 0 not started, 1 active, 2 churned
    core_sub: I64
    currency: I64  # index into currency_codes
    currency_codes: tuple[str, ...]
    plan_ids: tuple[str, ...]
    product_ids: tuple[str, ...]
    h_hist: F64  # health at each month end (late payments)
    subs: Subs
    changes: Rows  # sub, ts, plan, qty, kind
    events: Rows  # acc, day, ts, kind, sub, delta_mrr
    new_business: Rows  # acc, sub, ts, mrr
    renewals: Rows  # acc, sub, ts, won, mrr
    lost_opps: Rows  # acc, kind, created, closed, mrr
    tickets: Rows
    nps: Rows
    activities: Rows

    def account_fields(self) -> dict[str, Any]:
        """industry, country, employee_count, segment, owner_name, owner_email."""
        ...

    def catalog_tables(self) -> Tables:
        """billing.products, billing.plans, billing.plan_limits."""
        ...

    def unit_amounts(self, sub: I64, plan: I64) -> F64:
        """Price of one unit for one billing period of `sub` on `plan`, in its currency."""
        ...

    def billing_amount(self, amount: F64, acc: I64) -> F64:
        """Amounts of the simulation's price unit to each account's currency, rounded."""
        ...

    def core_mrr(self, acc: I64) -> F64:
        """Current MRR of each account's core subscription (simulation's price unit)."""
        ...


def build_tables(world: World, names: CrmNames) -> Tables:
    """The CSV extracts one at a time (only one is held in memory), columns as in the contract."""
    cal, rng = world.cal, world.rng_out
    end_ts = cal.end_ts
    n = world.n
    acc_ids = world.account_ids
    cur_codes = pa.array(list(world.currency_codes))
    currency = world.currency

    # --- names and domains of accounts
    p = world.name_parts
    word_a = pick(names.words_a, p[:, 0] % len(names.words_a))
    word_b = pick(names.words_b, p[:, 1] % len(names.words_b))
    word_c = pick(names.words_c, p[:, 2] % len(names.words_c))
    suffix = pick(names.suffixes, world.suffix)
    account_name = join_text(join_text(word_a, word_b), word_c, suffix, sep=" ")
    domain = join_text(pc.utf8_lower(join_text(word_a, word_b)), pc.utf8_lower(word_c), sep="-")
    domain = join_text(domain, ".example")

    # --- opportunities (needed for accounts.updated_at)
    opp = _opportunities(world)
    opp_updated = np.asarray(opp.pop("_updated"))
    opp_acc = np.asarray(opp.pop("_acc"))
    yield "crm", "opportunities", extract_table("crm", "opportunities", opp)

    created = world.crm_created_ts
    updated = created.copy()
    np.maximum.at(updated, opp_acc, opp_updated)
    touch = created + (rng.random(n) * (end_ts - created)).astype(np.int64)
    updated = np.where(rng.random(n) < 0.3, np.maximum(updated, touch), updated)
    yield (
        "crm",
        "accounts",
        extract_table(
            "crm",
            "accounts",
            {
                "account_id": acc_ids,
                "account_name": account_name,
                **world.account_fields(),
                "created_at": created,
                "updated_at": np.minimum(updated, end_ts),
            },
        ),
    )

    # --- contacts
    total = int(world.contact_count.sum())
    c_acc = np.repeat(np.arange(n), world.contact_count)
    c_pos = np.arange(total) - world.contact_offset[c_acc]
    first_i = rng.integers(0, len(names.first_names), total)
    last_i = rng.integers(0, len(names.last_names), total)
    email = join_text(
        join_text(
            pick(tuple(f[1] for f in names.first_names), first_i),
            pick(tuple(f[1] for f in names.last_names), last_i),
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
    contact_ids = ids("0035g000", np.arange(total), 7)
    yield (
        "crm",
        "contacts",
        extract_table(
            "crm",
            "contacts",
            {
                "contact_id": contact_ids,
                "account_id": acc_ids.take(pa.array(c_acc)),
                "first_name": pick(tuple(f[0] for f in names.first_names), first_i),
                "last_name": pick(tuple(f[0] for f in names.last_names), last_i),
                "email": email,
                "title": pick(
                    names.titles, rng.integers(0, len(names.titles), total), rng.random(total) < 0.1
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
        extract_table(
            "crm",
            "activities",
            {
                "activity_id": ids("00T5g000", np.arange(len(ts)), 9),
                "account_id": acc_ids.take(pa.array(a.get("acc")[order])),
                "activity_type": pick(ACTIVITY_TYPES, a.get("kind")[order]),
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
        extract_table(
            "crm",
            "support_tickets",
            {
                "ticket_id": ids("5005g000", np.arange(len(opened)), 7),
                "account_id": acc_ids.take(pa.array(t.get("acc")[order])),
                "priority": pick(TICKET_PRIORITIES, t.get("priority")[order]),
                "category": pick(TICKET_CATEGORIES, t.get("category")[order]),
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
        extract_table(
            "crm",
            "nps_responses",
            {
                "response_id": ids("nps_", np.arange(len(ts)), 8),
                "account_id": acc_ids.take(pa.array(r.get("acc")[order])),
                "contact_id": contact_ids.take(pa.array(r.get("contact")[order])),
                "score": r.get("score")[order],
                "responded_at": ts[order],
            },
        ),
    )

    # --- products, plans, plan limits
    yield from world.catalog_tables()

    # --- subscriptions and their changes
    subs = world.subs
    ns = subs.n
    s_acc, s_prod, s_period = subs.acc[:ns], subs.prod[:ns], subs.period[:ns]
    s_start, s_cancel = subs.start_ts[:ns], subs.cancel_ts[:ns]
    ch_sub, ch_ts, ch_plan, ch_qty, unit = versions(world)
    ch_cur = currency[s_acc[ch_sub]]
    customer_ids = ids("cus_", np.arange(n), 6)
    sub_ids = ids("sub_", np.arange(ns), 7)
    yield (
        "billing",
        "subscription_changes",
        extract_table(
            "billing",
            "subscription_changes",
            {
                "change_id": ids("chg_", np.arange(len(ch_ts)), 8),
                "subscription_id": sub_ids.take(pa.array(ch_sub)),
                "effective_at": ch_ts,
                "plan_id": pick(world.plan_ids, ch_plan),
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
        extract_table(
            "billing",
            "subscriptions",
            {
                "subscription_id": sub_ids,
                "customer_id": customer_ids.take(pa.array(s_acc)),
                "product_id": pick(world.product_ids, s_prod),
                "billing_period_months": s_period,
                "term_months": subs.term[:ns],
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
        extract_table(
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


def versions(world: World) -> tuple[I64, I64, I64, I64, F64]:
    """Subscription versions in billing order (by time, then subscription): subscription, time,
    plan, quantity and the unit price per billing period in the account's currency."""
    ch = world.changes
    sub, ts, plan, qty = ch.get("sub"), ch.get("ts"), ch.get("plan"), ch.get("qty")
    order = np.lexsort((sub, ts))
    sub, ts, plan, qty = sub[order], ts[order], plan[order], qty[order]
    return sub, ts, plan, qty, world.unit_amounts(sub, plan)


def mrr_truth(world: World) -> pa.Table:
    """What every account pays per month at each month end, from the simulation's own state.

    One row per account per month with MRR at the month's end (the last month ends at the
    end of the export day), in the account's billing currency: for every subscription in
    service right before that instant, quantity x unit price / billing period of the version
    in force. Accounts without MRR at a month end have no row for it.
    """
    cal, subs = world.cal, world.subs
    ns = subs.n
    start, cancel = subs.start_ts[:ns], subs.cancel_ts[:ns]
    ch_sub, ch_ts, _, ch_qty, unit = versions(world)
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
            "currency": pa.array(list(world.currency_codes)).take(pa.array(world.currency[acc])),
            "mrr": pa.array(mrr),
        }
    )


def _opportunities(world: World) -> dict[str, Any]:
    """One won opportunity per purchase, renewals won or lost, and some lost or open deals."""
    cal, rng = world.cal, world.rng_out
    end_ts = cal.end_ts
    parts: list[tuple[I64, I64, I64, I64, B, F64]] = []  # acc kind created closed won mrr

    def lead(ts: I64, lo: int, hi: int, acc: I64) -> I64:
        c = ts - rng.integers(lo * DAY, hi * DAY, len(ts))
        return np.maximum(c, world.crm_created_ts[acc])

    ev = world.events
    acc, ts, kind = ev.get("acc"), ev.get("ts"), ev.get("kind")
    parts.append(
        (acc, kind, lead(ts, 5, 28, acc), ts, np.ones(len(acc), bool), ev.get("delta_mrr", float))
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
    # renewals of term contracts coming up after the export: open opportunities
    active = np.flatnonzero(world.status == 1)
    core = world.core_sub[active]
    term = world.subs.term[core]
    active, core, term = active[term >= 6], core[term >= 6], term[term >= 6]
    nxt = next_anniversary(
        world.subs.start_ts[core] // DAY, np.full(len(active), cal.end_day), term
    )
    created = nxt * DAY - rng.integers(45 * DAY, 75 * DAY, len(active))
    soon = created <= end_ts
    acc = active[soon]
    parts.append(
        (
            acc,
            np.full_like(acc, 3),
            created[soon],
            np.full(len(acc), NULL_TS),
            np.zeros(len(acc), bool),
            world.core_mrr(acc),
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
        "opportunity_id": ids("0065g000", np.arange(len(acc)), 7),
        "account_id": world.account_ids.take(pa.array(acc[order])),
        "opportunity_type": pick(OPPORTUNITY_TYPES, kind[order]),
        "stage": pick(OPPORTUNITY_STAGES, stage[order]),
        "amount": world.billing_amount(np.abs(mrr) * 12, acc)[order],
        "currency": pa.array(list(world.currency_codes)).take(pa.array(cur[order])),
        "created_at": created[order],
        "closed_at": closed[order],
        "updated_at": updated[order],
        "_updated": updated[order],
        "_acc": acc[order],
    }


def _invoices(
    world: World,
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
    k_first = -(-np.maximum(cal.first_month - month_of(start_day), 0) // period)
    k_last = (month_of(last_day) - month_of(start_day)) // period
    k_last = np.where(add_months(start_day, k_last * period) > last_day, k_last - 1, k_last)
    count = np.maximum(k_last - k_first + 1, 0)
    sub = np.repeat(np.arange(ns), count)
    k = k_first[sub] + (np.arange(len(sub)) - np.repeat(np.cumsum(count) - count, count))
    issue_day = add_months(start_day[sub], k * period[sub])
    issued = issue_day * DAY + start_ts[sub] % DAY

    ch_sub, ch_ts, ch_qty, unit = changes
    span = np.int64(1 << 40)
    key = ch_sub * span + ch_ts
    by_key = np.argsort(key, kind="stable")
    pos = by_key[np.searchsorted(key[by_key], sub * span + issued, side="right") - 1]
    amount = ch_qty[pos] * unit[pos]

    acc = subs.acc[sub]
    month_idx = np.clip(month_of(issue_day) - cal.first_month, 0, cal.months - 1)
    h = world.h_hist[acc, month_idx]
    m = len(sub)
    late = rng.random(m) < sigmoid(-2.8 - 1.5 * h)
    never = rng.random(m) < sigmoid(-6.0 - 1.5 * h)
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
    return extract_table(
        "billing",
        "invoices",
        {
            "invoice_id": ids("in_", np.arange(m), 8),
            "customer_id": customer_ids.take(pa.array(acc[order])),
            "subscription_id": sub_ids.take(pa.array(sub[order])),
            "issued_at": issued[order],
            "due_at": due[order],
            "paid_at": np.where(unpaid, NULL_TS, paid)[order],
            "amount_due": amount[order],
            "currency": pa.array(list(world.currency_codes)).take(pa.array(cur[order])),
            "status": pick(INVOICE_STATUSES, status[order]),
            "updated_at": np.minimum(updated, end_ts)[order],
        },
    )
