"""The limit of a scoring run: the least work that gives every active account a score.

One DuckDB query computes the champion's features for all accounts at `as_of` straight from
the raw tables the loader wrote (`raw.*` in the warehouse; not through dbt's staging,
intermediate or marts), LightGBM's `predict` (the champion's boosters and calibrators, via
`TrainedModel.predict_proba`) scores them, and the scores are written to a DuckDB table. Timed
alone, in its own process, on the same data the pipeline just scored.

What the query computes, against marts.account_snapshots (see `FEATURES`):
* exactly as dbt defines them: usage (7/30/90-day averages, trend, API calls, storage,
  features used, the utilisations), contracts (MRR, products, core tier, top tier, seats,
  days to renewal, tenure), MRR 90 days ago, tickets, NPS, activities, invoices,
  opportunities, segment;
* approximated: days_since_last_expansion / days_since_last_contraction (from subscription
  versions whose MRR and seats or tier moved, new subscriptions on an account that already
  held one, cancellations; dbt classifies movements per product on an account timeline);
* filled, not computed: companion_products_not_held = 0 and top_companion_product_name =
  NULL (dbt derives them from product-pair statistics over all accounts).
`agreement()` measures, outside the timing, how often each feature equals the mart's value.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from flows.settings import PROJECT_DIR

FILLED = {"companion_products_not_held": "0", "top_companion_product_name": "NULL"}
APPROXIMATED = ("days_since_last_expansion", "days_since_last_contraction")
FX_SEED = PROJECT_DIR / "dbt_project" / "seeds" / "fx_rates.csv"


def _clean(col: str) -> str:
    return f"nullif(regexp_replace(lower(trim({col})), '[\\s\\-]+', '_', 'g'), '')"


def _latest(key: str, updated_at: str | None = "updated_at") -> str:
    order = [f"{updated_at} desc nulls last"] if updated_at else []
    order += ["_loaded_at desc nulls last", "_source_file desc nulls last"]
    return f"qualify row_number() over (partition by trim({key}) order by {', '.join(order)}) = 1"


def features_sql(fx_csv: Path = FX_SEED) -> str:
    """The one query: one row per account existing at $as_of, the champion's columns."""
    eot = "timestamp '9999-12-31'"
    return f"""
with
p as (
    select cast($as_of as date) as as_of,
           cast(cast($as_of as date) + 1 as timestamp) as end_at
),
fx as (select upper(currency) as currency, rate_to_usd from read_csv('{fx_csv}', header = true)),
accounts as (
    select trim(account_id) as account_id, {_clean("segment")} as segment, created_at
    from raw.crm__accounts where account_id is not null {_latest("account_id")}
),
spine as (select a.* from accounts a, p where cast(a.created_at as date) <= p.as_of),
customers as (
    select trim(customer_id) as customer_id, trim(crm_account_id) as account_id
    from raw.billing__customers where customer_id is not null {_latest("customer_id")}
),
subs as (
    select trim(subscription_id) as subscription_id, trim(customer_id) as customer_id,
           trim(product_id) as product_id, billing_period_months, term_months, started_at,
           canceled_at
    from raw.billing__subscriptions where subscription_id is not null {_latest("subscription_id")}
),
products as (
    select trim(product_id) as product_id, {_clean("product_family")} as product_family
    from raw.billing__products where product_id is not null {_latest("product_id", None)}
),
plans as (
    select trim(plan_id) as plan_id, tier_rank, storage_limit_gb, api_calls_limit,
           tier_rank = max(tier_rank) over (partition by trim(product_id)) as is_top_tier
    from raw.billing__plans where plan_id is not null {_latest("plan_id", None)}
),
changes as (
    select trim(change_id) as change_id, trim(subscription_id) as subscription_id,
           effective_at, trim(plan_id) as plan_id, quantity, unit_amount,
           upper(trim(currency)) as currency
    from raw.billing__subscription_changes where change_id is not null {_latest("change_id", None)}
),
ordered as (
    select c.subscription_id, cu.account_id, s.product_id, pr.product_family, c.plan_id,
           pl.tier_rank, c.quantity, s.term_months, s.started_at, s.canceled_at,
           c.unit_amount * c.quantity / s.billing_period_months * fx.rate_to_usd as mrr,
           row_number() over (partition by c.subscription_id
                              order by c.effective_at, c.change_id) as version_number,
           c.effective_at
    from changes c
    join subs s on s.subscription_id = c.subscription_id
    join customers cu on cu.customer_id = s.customer_id
    left join products pr on pr.product_id = s.product_id
    left join plans pl on pl.plan_id = c.plan_id
    left join fx on fx.currency = c.currency
),
ranged as (
    select *, case when version_number = 1 then started_at
                   else greatest(effective_at, started_at) end as valid_from
    from ordered
),
versions as (
    select *, nullif(least(
                coalesce(lead(valid_from) over (partition by subscription_id
                                                order by version_number), {eot}),
                coalesce(canceled_at, {eot})), {eot}) as valid_to,
           lag(mrr) over w as mrr_before, lag(quantity) over w as quantity_before,
           lag(tier_rank) over w as tier_before
    from ranged
    window w as (partition by subscription_id order by version_number)
),
held as (
    select v.* from versions v, p
    where (v.valid_to is null or v.valid_to > v.valid_from)
      and v.valid_from < p.end_at and (v.valid_to is null or v.valid_to >= p.end_at)
),
held_90 as (
    select v.account_id, sum(v.mrr) as mrr_90d_ago from versions v, p
    where (v.valid_to is null or v.valid_to > v.valid_from)
      and v.valid_from < cast(p.as_of - 89 as timestamp)
      and (v.valid_to is null or v.valid_to >= cast(p.as_of - 89 as timestamp))
    group by v.account_id
),
totals as (
    select account_id, sum(mrr) as mrr, count(distinct product_id) as products_held
    from held group by account_id
),
core as (
    select account_id, product_id as core_product_id, plan_id as core_plan_id,
           started_at as core_started_at, term_months as core_term_months
    from held where product_family = 'core'
    qualify row_number() over (partition by account_id
        order by mrr desc, tier_rank desc nulls last, started_at, subscription_id) = 1
),
core_seats as (
    select h.account_id, sum(h.quantity) as seats_purchased, max(h.tier_rank) as core_tier_rank
    from held h join core c on c.account_id = h.account_id and c.core_product_id = h.product_id
    group by h.account_id
),
first_start as (
    select account_id, min(valid_from) as first_subscription_at from versions group by account_id
),
contract as (
    select c.account_id, pl.is_top_tier, pl.storage_limit_gb, pl.api_calls_limit,
           cast(c.core_started_at as date) as started, c.core_term_months as term,
           greatest(1, floor(datediff('month', cast(c.core_started_at as date), p.as_of)
                             / c.core_term_months)) as k0
    from core c cross join p left join plans pl on pl.plan_id = c.core_plan_id
),
renewal as (
    select account_id, is_top_tier, storage_limit_gb, api_calls_limit,
           case when term is null or term <= 0 then null
                when cast(started + to_months(cast(k0 * term as integer)) as date) > p.as_of
                    then cast(started + to_months(cast(k0 * term as integer)) as date)
                else cast(started + to_months(cast((k0 + 1) * term as integer)) as date)
           end as renewal_date
    from contract cross join p
),
events as (
    select account_id, valid_from as event_at,
           case when version_number > 1 and mrr > mrr_before
                     and (tier_rank > tier_before or quantity > quantity_before) then 'expansion'
                when version_number > 1 and mrr < mrr_before
                     and (tier_rank < tier_before or quantity < quantity_before) then 'contraction'
                when version_number = 1 and valid_from > min(valid_from) over (partition by account_id)
                    then 'expansion'
           end as kind
    from versions
    union all
    select account_id, canceled_at, 'contraction' from subs s
    join customers cu on cu.customer_id = s.customer_id where canceled_at is not null
),
movements as (
    select e.account_id,
           max(e.event_at) filter (where kind = 'expansion') as last_expansion_at,
           max(e.event_at) filter (where kind = 'contraction') as last_contraction_at
    from events e, p where e.event_at < p.end_at group by e.account_id
),
usage_days as (
    select trim(u.account_id) as account_id, u.usage_date,
           cast(p.as_of - u.usage_date as integer) as days_back,
           arg_max(u.value, u._loaded_at) filter (where u.metric = 'active_users') as active_users,
           arg_max(u.value, u._loaded_at) filter (where u.metric = 'api_calls') as api_calls,
           arg_max(u.value, u._loaded_at) filter (where u.metric = 'storage_gb') as storage_gb,
           arg_max(u.value, u._loaded_at) filter (where u.metric = 'features_used') as features_used
    from raw.usage__usage_daily u, p
    where u.usage_date > p.as_of - 90 and u.usage_date <= p.as_of
      and u.account_id is not null and u.value is not null
    group by all
),
usage as (
    select account_id,
           avg(active_users) filter (where days_back < 7) as active_users_7d_avg,
           avg(active_users) filter (where days_back < 30) as active_users_30d_avg,
           avg(active_users) as active_users_90d_avg,
           avg(active_users) filter (where days_back < 28) as au_28d,
           avg(active_users) filter (where days_back >= 28 and days_back < 56) as au_prior_28d,
           cast(coalesce(sum(api_calls) filter (where days_back < 30), 0) as double) as api_calls_30d,
           arg_max(storage_gb, usage_date) filter (where storage_gb is not null) as storage_gb_latest,
           avg(features_used) filter (where days_back < 30) as features_used_30d_avg
    from usage_days group by account_id
),
tickets as (
    select trim(account_id) as account_id, {_clean("priority")} as priority, opened_at, closed_at
    from raw.crm__support_tickets where ticket_id is not null {_latest("ticket_id")}
),
ticket_counts as (
    select t.account_id,
           count(*) filter (where t.opened_at < p.end_at
                            and coalesce(t.closed_at, {eot}) >= p.end_at) as tickets_open,
           count(*) filter (where t.opened_at < p.end_at
                            and coalesce(t.closed_at, {eot}) >= p.end_at
                            and t.priority = 'urgent') as urgent_tickets_open,
           count(*) filter (where t.opened_at < p.end_at
                            and t.opened_at >= p.end_at - interval 90 day) as tickets_90d
    from tickets t, p group by t.account_id
),
nps as (
    select trim(account_id) as account_id, score, responded_at,
           lag(score) over (partition by trim(account_id)
                            order by responded_at, response_id) as previous_score
    from raw.crm__nps_responses
    where response_id is not null {_latest("response_id", None)}
),
nps_latest as (
    select n.account_id, n.score as nps_latest, n.previous_score as nps_previous,
           datediff('day', cast(n.responded_at as date), p.as_of) as days_since_nps
    from nps n, p where n.responded_at < p.end_at
    qualify row_number() over (partition by n.account_id order by n.responded_at desc) = 1
),
activities as (
    select a.account_id,
           count(*) filter (where a.occurred_at >= p.end_at - interval 30 day) as activities_30d,
           count(*) filter (where a.occurred_at >= p.end_at - interval 90 day
                            and a.activity_type in ('meeting', 'qbr')) as meetings_90d,
           datediff('day', cast(max(a.occurred_at) as date), p.as_of) as days_since_last_activity
    from (select trim(account_id) as account_id, {_clean("activity_type")} as activity_type,
                 occurred_at
          from raw.crm__activities where activity_id is not null
          {_latest("activity_id", None)}) a, p
    where a.occurred_at < p.end_at
    group by a.account_id, p.as_of
),
invoices as (
    select cu.account_id, i.issued_at, i.due_at, i.paid_at,
           case when {_clean("i.status")} = 'void' then i.updated_at end as voided_at
    from (select * from raw.billing__invoices where invoice_id is not null
          {_latest("invoice_id")}) i
    join customers cu on cu.customer_id = trim(i.customer_id)
),
invoice_counts as (
    select i.account_id,
           count(*) filter (where i.paid_at < p.end_at and i.paid_at >= p.end_at - interval 365 day
                            and i.paid_at > i.due_at) as invoices_paid_late_365d,
           count(*) filter (where i.due_at < p.end_at and i.issued_at < p.end_at
                            and least(coalesce(i.paid_at, {eot}), coalesce(i.voided_at, {eot}))
                                >= p.end_at) as invoices_overdue_open
    from invoices i, p group by i.account_id
),
opportunities as (
    select trim(account_id) as account_id, {_clean("stage")} as stage, created_at,
           case when {_clean("stage")} != 'open' then coalesce(closed_at, updated_at) end as closed_at
    from raw.crm__opportunities where opportunity_id is not null {_latest("opportunity_id")}
),
opportunity_counts as (
    select o.account_id,
           count(*) filter (where o.created_at < p.end_at
                            and coalesce(o.closed_at, {eot}) >= p.end_at) as opportunities_open,
           count(*) filter (where o.stage = 'closed_won' and o.closed_at < p.end_at
                            and o.closed_at >= p.end_at - interval 365 day) as opportunities_won_365d
    from opportunities o, p group by o.account_id
)
select
    s.account_id,
    p.as_of as snapshot_date,
    coalesce(t.products_held, 0) > 0 as is_active,
    s.segment,
    cast(datediff('day', cast(coalesce(case when f.first_subscription_at < p.end_at
                                            then f.first_subscription_at end, s.created_at)
                                   as date), p.as_of) as integer) as tenure_days,
    cast(coalesce(t.mrr, 0) as double) as mrr,
    cast(coalesce(t.mrr, 0) - coalesce(h90.mrr_90d_ago, 0) as double) as mrr_change_90d,
    cast(coalesce(t.products_held, 0) as integer) as products_held,
    {FILLED["companion_products_not_held"]} as companion_products_not_held,
    cast({FILLED["top_companion_product_name"]} as varchar) as top_companion_product_name,
    cs.core_tier_rank,
    r.is_top_tier,
    cs.seats_purchased,
    u.active_users_7d_avg,
    u.active_users_30d_avg,
    u.active_users_90d_avg,
    u.au_28d / nullif(u.au_prior_28d, 0) - 1 as active_users_trend_28d,
    cast(u.active_users_7d_avg as double) / nullif(cast(cs.seats_purchased as double), 0) as seat_utilization_7d,
    cast(u.active_users_30d_avg as double) / nullif(cast(cs.seats_purchased as double), 0) as seat_utilization_30d,
    u.api_calls_30d,
    u.api_calls_30d / nullif(cast(r.api_calls_limit as double), 0) as api_calls_utilization,
    u.storage_gb_latest,
    u.storage_gb_latest / nullif(cast(r.storage_limit_gb as double), 0) as storage_utilization,
    u.features_used_30d_avg,
    cast(datediff('day', p.as_of, r.renewal_date) as integer) as days_to_renewal,
    cast(coalesce(tc.tickets_open, 0) as integer) as tickets_open,
    cast(coalesce(tc.urgent_tickets_open, 0) as integer) as urgent_tickets_open,
    cast(coalesce(tc.tickets_90d, 0) as integer) as tickets_90d,
    n.nps_latest,
    n.nps_previous,
    cast(n.days_since_nps as integer) as days_since_nps,
    coalesce(n.days_since_nps < 90 and n.nps_latest >= 9, false) as is_promoter_90d,
    coalesce(n.days_since_nps < 90 and n.nps_latest <= 6, false) as is_detractor_90d,
    cast(coalesce(ac.activities_30d, 0) as integer) as activities_30d,
    cast(coalesce(ac.meetings_90d, 0) as integer) as meetings_90d,
    cast(ac.days_since_last_activity as integer) as days_since_last_activity,
    cast(coalesce(ic.invoices_paid_late_365d, 0) as integer) as invoices_paid_late_365d,
    cast(coalesce(ic.invoices_overdue_open, 0) as integer) as invoices_overdue_open,
    cast(coalesce(oc.opportunities_open, 0) as integer) as opportunities_open,
    cast(coalesce(oc.opportunities_won_365d, 0) as integer) as opportunities_won_365d,
    cast(datediff('day', cast(m.last_expansion_at as date), p.as_of) as integer) as days_since_last_expansion,
    cast(datediff('day', cast(m.last_contraction_at as date), p.as_of) as integer) as days_since_last_contraction
from spine s
cross join p
left join totals t on t.account_id = s.account_id
left join held_90 h90 on h90.account_id = s.account_id
left join core_seats cs on cs.account_id = s.account_id
left join renewal r on r.account_id = s.account_id
left join first_start f on f.account_id = s.account_id
left join usage u on u.account_id = s.account_id
left join ticket_counts tc on tc.account_id = s.account_id
left join nps_latest n on n.account_id = s.account_id
left join activities ac on ac.account_id = s.account_id
left join invoice_counts ic on ic.account_id = s.account_id
left join opportunity_counts oc on oc.account_id = s.account_id
left join movements m on m.account_id = s.account_id
"""


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    rel = con.sql(sql, params=params)
    fetch = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table
    frame: pd.DataFrame = fetch().to_pandas(date_as_object=False)
    return frame


def run_limit(
    warehouse: Path,
    registry: Path,
    version: str,
    as_of: date,
    out_db: Path,
    memory_limit: str = "8GB",
) -> dict[str, Any]:
    """Time the limit: model load, the features query, predict, write. Seconds per part."""
    from flows.registry import load_model
    from models.features import prepare_features

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    model = load_model(registry, version)
    timings["model_load_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    con = duckdb.connect(str(warehouse), read_only=True, config={"memory_limit": memory_limit})
    try:
        frame = _fetch(con, features_sql(), {"as_of": as_of})
    finally:
        con.close()
    timings["query_s"] = time.perf_counter() - t
    rows_all = len(frame)

    t = time.perf_counter()
    active = frame[frame["is_active"]].reset_index(drop=True)
    X, _ = prepare_features(active, model.params, model.categories)
    probs = model.predict_proba(X)
    timings["predict_s"] = time.perf_counter() - t

    t = time.perf_counter()
    scores = pd.DataFrame(
        {
            "account_id": active["account_id"],
            "as_of": as_of,
            **{c: probs[c].to_numpy() for c in probs.columns},
            "model_version": version,
        }
    )
    out_db.parent.mkdir(parents=True, exist_ok=True)
    out = duckdb.connect(str(out_db))
    try:
        out.register("scores_frame", scores)
        out.execute("create or replace table limit_scores as select * from scores_frame")
    finally:
        out.close()
    timings["write_s"] = time.perf_counter() - t
    timings["limit_wall_s"] = time.perf_counter() - t0
    return {
        **{k: round(v, 3) for k, v in timings.items()},
        "rows_features": rows_all,
        "rows_scored": len(scores),
        "features": list(model.features),
        "_frame": active,
        "_scores": scores,
    }


def agreement(
    warehouse: Path, features: list[str], frame: pd.DataFrame, scores: pd.DataFrame, as_of: date
) -> dict[str, Any]:
    """How the limit's features and scores compare with the pipeline's at the same as_of.

    Per feature: the share of active accounts where the limit's value equals the mart's
    (both null counts as equal; numbers within 1e-6 relative). Scores: Pearson correlation
    and mean absolute difference of p_expansion with scores.account_scores, and the overlap
    of the top decile."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        mart = con.execute(
            "select * from marts.account_snapshots where snapshot_date = ? and is_active", [as_of]
        ).df()
        pipe = con.execute(
            "select account_id, p_expansion from scores.account_scores where as_of = ?", [as_of]
        ).df()
    finally:
        con.close()
    joined = frame.merge(mart, on="account_id", suffixes=("", "_mart"), how="outer")
    per_feature: dict[str, float] = {}
    for f in features:
        if f not in frame.columns or f not in mart.columns:
            per_feature[f] = float("nan")
            continue
        a, b = joined[f], joined[f + "_mart"]
        if pd.api.types.is_numeric_dtype(a.dtype) or pd.api.types.is_bool_dtype(a.dtype):
            x = pd.to_numeric(a.astype("Float64"), errors="coerce").astype(float).to_numpy()
            y = pd.to_numeric(b.astype("Float64"), errors="coerce").astype(float).to_numpy()
            same = (np.isnan(x) & np.isnan(y)) | np.isclose(x, y, rtol=1e-6, atol=1e-9)
        else:
            same = (a.isna() & b.isna()) | (a.astype(object) == b.astype(object))
        per_feature[f] = round(float(np.mean(same)), 4)
    both = scores.merge(pipe, on="account_id", suffixes=("_limit", "_pipeline"))
    top_n = max(1, len(both) // 10)
    top_limit = set(both.nlargest(top_n, "p_expansion_limit")["account_id"])
    top_pipe = set(both.nlargest(top_n, "p_expansion_pipeline")["account_id"])
    return {
        "accounts_limit": len(frame),
        "accounts_pipeline": len(mart),
        "accounts_in_both": int(frame["account_id"].isin(mart["account_id"]).sum()),
        "feature_match_share": per_feature,
        "features_exact": sorted(f for f, v in per_feature.items() if v >= 0.999),
        "p_expansion_corr": round(
            float(both["p_expansion_limit"].corr(both["p_expansion_pipeline"])), 4
        ),
        "p_expansion_mean_abs_diff": round(
            float((both["p_expansion_limit"] - both["p_expansion_pipeline"]).abs().mean()), 5
        ),
        "top_decile_overlap": round(len(top_limit & top_pipe) / top_n, 4),
    }
