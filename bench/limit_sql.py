"""The limit's one query (bench/limit.py), generated: SQL over `raw.*` that computes the
champion's features of every account at $as_of as dbt's models compute them (each CTE names
the model it mirrors). No metric, product or plan of a business is named here: usage features
come from the declaration the loader wrote (raw.config__usage_metrics)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from flows.settings import PROJECT_DIR
from models.usage_features import SEPARATOR

FX_SEED = PROJECT_DIR / "dbt_project" / "seeds" / "fx_rates.csv"

# A usage feature's statistic -> its column in the `metric_features` relation of the query
# (dbt's usage_feature_stats() pairs: `<metric>__30d` is value_30d, `__latest` latest_value).
STAT_COLUMNS = {
    "7d": "value_7d",
    "30d": "value_30d",
    "90d": "value_90d",
    "latest": "latest_value",
    "trend_28d": "trend_28d",
    "active_days_30d": "active_days_30d",
    "days_since_use": "days_since_use",
    "utilization": "utilization",
}

# The account-level columns the query can return, as SQL over the final select's relations
# (s spine, t totals, h90 mrr 90 days ago, cs core units, r renewal, f first start, tc
# tickets, n nps, ac activities, ic invoices, oc opportunities, m movements, lp limit pressure,
# cr companions).
SNAPSHOT_COLUMNS = {
    "segment": "s.segment",
    "tenure_days": """cast(datediff('day', cast(coalesce(
        case when f.first_subscription_at < p.end_at then f.first_subscription_at end,
        s.created_at) as date), p.as_of) as integer)""",
    "mrr": "cast(coalesce(t.mrr, 0) as double)",
    "mrr_90d_ago": "cast(coalesce(h90.mrr_90d_ago, 0) as double)",
    "mrr_change_90d": "cast(coalesce(t.mrr, 0) - coalesce(h90.mrr_90d_ago, 0) as double)",
    "products_held": "cast(coalesce(t.products_held, 0) as integer)",
    "companion_products_not_held": "cast(coalesce(cr.companion_products_not_held, 0) as integer)",
    "top_companion_product_id": "cr.top_companion_product_id",
    "top_companion_product_name": "cr.top_companion_product_name",
    "core_tier_rank": "cast(cs.core_tier_rank as integer)",
    "is_top_tier": "r.is_top_tier",
    "core_quantity": "cast(cs.core_quantity as integer)",
    "core_pricing_model": "r.core_pricing_model",
    "core_term_months": "cast(r.core_term_months as integer)",
    "core_billing_period_months": "cast(r.core_billing_period_months as integer)",
    "is_monthly_term": "r.core_term_months = 1",
    "max_limit_utilization": "lp.max_limit_utilization",
    "binding_limit_metric": "lp.binding_limit_metric",
    "per_unit_limit_utilization": "lp.per_unit_limit_utilization",
    "days_to_renewal": "cast(datediff('day', p.as_of, r.renewal_date) as integer)",
    "months_to_renewal": """cast(case
        when p.as_of + to_months(cast(datediff('month', p.as_of, r.renewal_date) as integer))
            > r.renewal_date
        then datediff('month', p.as_of, r.renewal_date) - 1
        else datediff('month', p.as_of, r.renewal_date)
    end as integer)""",
    "tickets_open": "cast(coalesce(tc.tickets_open, 0) as integer)",
    "urgent_tickets_open": "cast(coalesce(tc.urgent_tickets_open, 0) as integer)",
    "tickets_90d": "cast(coalesce(tc.tickets_90d, 0) as integer)",
    "nps_latest": "n.nps_latest",
    "nps_previous": "n.nps_previous",
    "days_since_nps": "cast(n.days_since_nps as integer)",
    "is_promoter_90d": "coalesce(n.days_since_nps < 90 and n.nps_latest >= 9, false)",
    "is_detractor_90d": "coalesce(n.days_since_nps < 90 and n.nps_latest <= 6, false)",
    "activities_30d": "cast(coalesce(ac.activities_30d, 0) as integer)",
    "meetings_90d": "cast(coalesce(ac.meetings_90d, 0) as integer)",
    "days_since_last_activity": "cast(ac.days_since_last_activity as integer)",
    "invoices_paid_late_365d": "cast(coalesce(ic.invoices_paid_late_365d, 0) as integer)",
    "invoices_overdue_open": "cast(coalesce(ic.invoices_overdue_open, 0) as integer)",
    "opportunities_open": "cast(coalesce(oc.opportunities_open, 0) as integer)",
    "opportunities_won_365d": "cast(coalesce(oc.opportunities_won_365d, 0) as integer)",
    "days_since_last_expansion": """cast(datediff('day', cast(m.last_expansion_at as date),
        p.as_of) as integer)""",
    "days_since_last_contraction": """cast(datediff('day', cast(m.last_contraction_at as date),
        p.as_of) as integer)""",
}


def _clean(col: str) -> str:
    return f"nullif(regexp_replace(lower(trim({col})), '[\\s\\-]+', '_', 'g'), '')"


def _latest(keys: str, updated_at: str | None = "updated_at") -> str:
    """dbt's dedupe_latest: the latest version of each key (`keys`: SQL expressions)."""
    order = [f"{updated_at} desc nulls last"] if updated_at else []
    order += ["_loaded_at desc nulls last", "_source_file desc nulls last"]
    return f"qualify row_number() over (partition by {keys} order by {', '.join(order)}) = 1"


def _divide(numerator: str, denominator: str) -> str:
    """dbt's safe_divide: a double, null when the denominator is null or 0."""
    return f"(cast({numerator} as double) / nullif(cast({denominator} as double), 0))"


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def usage_columns(
    columns: Iterable[str], metrics: Sequence[tuple[str, str, str | None]]
) -> dict[str, tuple[str, str]]:
    """The usage features among `columns` (`<declared metric>__<stat>`) -> (metric, column of
    the query's metric_features); an error for a statistic the query does not compute."""
    declared = {m[0] for m in metrics}
    found: dict[str, tuple[str, str]] = {}
    for column in columns:
        metric, sep, stat = column.partition(SEPARATOR)
        if not sep or metric not in declared:
            continue
        if stat not in STAT_COLUMNS:
            raise ValueError(
                f"bench/limit_sql.py: the champion's feature {column!r} is statistic {stat!r} of "
                f"declared metric {metric!r}; STAT_COLUMNS computes {sorted(STAT_COLUMNS)}"
            )
        found[column] = (metric, STAT_COLUMNS[stat])
    return found


def features_sql(
    columns: Sequence[str],
    metrics: Sequence[tuple[str, str, str | None]],
    fx_csv: Path = FX_SEED,
) -> str:
    """The one query: one row per account existing at $as_of with account_id, snapshot_date,
    is_active and `columns` (the champion's), for the declared `metrics` (metric,
    aggregation, limit_period: raw.config__usage_metrics). Parameters: $as_of,
    $reporting_currency and DBT_VARS' names (dbt_vars())."""
    usage = usage_columns(columns, metrics)
    missing = [c for c in columns if c not in usage and c not in SNAPSHOT_COLUMNS]
    if missing:
        raise ValueError(
            f"bench/limit_sql.py computes no column {missing} that the champion reads: neither a "
            "SNAPSHOT_COLUMNS entry nor `<metric>__<stat>` of a metric declared in "
            "raw.config__usage_metrics"
        )
    pivot = "".join(
        f"max(case when metric = {_string(metric)} then {stat_column} end) "
        f"as {_identifier(column)},\n           "
        for column, (metric, stat_column) in usage.items()
    )
    select = ",\n    ".join(
        f"up.{_identifier(c)}" if c in usage else f"{SNAPSHOT_COLUMNS[c]} as {_identifier(c)}"
        for c in columns
    )
    eot = "timestamp '9999-12-31'"
    rate_month = "cast(date_trunc('month', c.valid_from) as date)"
    # level and distinct metrics: the mean over reported days of the last 28 / the 28 before
    mean_trend = _divide(
        _divide("w.sum_28d", "w.reported_days_28d"),
        _divide("w.sum_prior_28d", "w.reported_days_prior_28d"),
    )
    return f"""
with
p as (
    select cast($as_of as date) as as_of,
           cast(cast($as_of as date) + 1 as timestamp) as end_at,
           cast($reporting_currency as varchar) as reporting_currency,
           cast($utilization_cap as double) as utilization_cap,
           cast($companion_min_support as double) as companion_min_support,
           cast($companion_min_pair_accounts as double) as companion_min_pair_accounts,
           cast($companion_min_lift as double) as companion_min_lift
),
static_rates as (select currency, rate_to_usd from read_csv('{fx_csv}', header = true)),
dated_rates as (
    select cast(rate_month as date) as rate_month, upper(trim(currency)) as currency,
           cast(rate_to_usd as double) as rate_to_usd
    from raw.billing__exchange_rates
    where rate_month is not null and nullif(trim(currency), '') is not null
    {_latest("rate_month, upper(trim(currency))", None)}
),
accounts as (
    select trim(account_id) as account_id, {_clean("segment")} as segment, created_at
    from raw.crm__accounts where account_id is not null {_latest("trim(account_id)")}
),
spine as (select a.* from accounts a, p where cast(a.created_at as date) <= p.as_of),
customers as (
    select trim(customer_id) as customer_id, trim(crm_account_id) as account_id
    from raw.billing__customers where customer_id is not null {_latest("trim(customer_id)")}
),
subs as (
    select trim(subscription_id) as subscription_id, trim(customer_id) as customer_id,
           trim(product_id) as product_id, billing_period_months, term_months, started_at,
           canceled_at
    from raw.billing__subscriptions where subscription_id is not null
    {_latest("trim(subscription_id)")}
),
products as (
    select trim(product_id) as product_id, trim(product_name) as product_name,
           {_clean("product_family")} as product_family
    from raw.billing__products where product_id is not null {_latest("trim(product_id)", None)}
),
plans as (
    select trim(plan_id) as plan_id, tier_rank,
           coalesce({_clean("pricing_model")}, 'per_seat') as pricing_model,
           tier_rank = max(tier_rank) over (partition by trim(product_id)) as is_top_tier
    from raw.billing__plans where plan_id is not null {_latest("trim(plan_id)", None)}
),
plan_limits as (
    select trim(plan_id) as plan_id, trim(metric) as metric,
           cast(limit_value as double) as limit_value, coalesce(per_unit, false) as is_per_unit
    from raw.billing__plan_limits where plan_id is not null and metric is not null
    {_latest("trim(plan_id), trim(metric)", None)}
),
declared as (select metric, aggregation, limit_period from raw.config__usage_metrics),
changes as (
    select trim(change_id) as change_id, trim(subscription_id) as subscription_id,
           effective_at, trim(plan_id) as plan_id, quantity, unit_amount,
           nullif(upper(trim(currency)), '') as currency
    from raw.billing__subscription_changes where change_id is not null
    {_latest("trim(change_id)", None)}
),
ordered as (
    select c.change_id, c.subscription_id, cu.account_id, s.product_id, pr.product_family,
           c.plan_id, pl.tier_rank, c.quantity, c.unit_amount, c.currency,
           s.billing_period_months, s.term_months, s.started_at, s.canceled_at, c.effective_at,
           row_number() over (partition by c.subscription_id
                              order by c.effective_at, c.change_id) as version_number
    from changes c
    join subs s on s.subscription_id = c.subscription_id
    join customers cu on cu.customer_id = s.customer_id
    left join products pr on pr.product_id = s.product_id
    left join plans pl on pl.plan_id = c.plan_id
),
ranged as (
    select *, case when version_number = 1 then started_at
                   else greatest(effective_at, started_at) end as valid_from
    from ordered
),
closed as (
    select *, nullif(least(
                coalesce(lead(valid_from) over (partition by subscription_id
                                                order by version_number), {eot}),
                coalesce(canceled_at, {eot})), {eot}) as valid_to
    from ranged
),
versions as (
    -- MRR in the reporting currency at the rates of the month of valid_from (dated rates,
    -- else the seed), as macros/reporting_rate.sql converts it
    select c.*,
           cast(c.unit_amount * c.quantity / c.billing_period_months
                * coalesce(dr.rate_to_usd, sr.rate_to_usd)
                / coalesce(rr.rate_to_usd, srr.rate_to_usd) as decimal(38, 6)) as mrr
    from closed c
    cross join p
    left join dated_rates dr on dr.currency = c.currency and dr.rate_month = {rate_month}
    left join static_rates sr on sr.currency = c.currency
    left join dated_rates rr on rr.currency = p.reporting_currency and rr.rate_month = {rate_month}
    left join static_rates srr on srr.currency = p.reporting_currency
    where c.valid_to is null or c.valid_to > c.valid_from
),
held as (
    select v.* from versions v, p
    where v.valid_from < p.end_at and (v.valid_to is null or v.valid_to >= p.end_at)
),
held_90 as (
    select v.account_id, sum(v.mrr) as mrr_90d_ago from versions v, p
    where v.valid_from < cast(p.as_of - 89 as timestamp)
      and (v.valid_to is null or v.valid_to >= cast(p.as_of - 89 as timestamp))
    group by v.account_id
),
totals as (
    select account_id, sum(mrr) as mrr, count(distinct product_id) as products_held
    from held group by account_id
),
core as (
    select account_id, product_id as core_product_id, plan_id as core_plan_id,
           started_at as core_started_at, term_months as core_term_months,
           billing_period_months as core_billing_period_months
    from held where product_family = 'core'
    qualify row_number() over (partition by account_id
        order by mrr desc, tier_rank desc nulls last, started_at, subscription_id) = 1
),
core_units as (
    select h.account_id, sum(h.quantity) as core_quantity, max(h.tier_rank) as core_tier_rank
    from held h join core c on c.account_id = h.account_id and c.core_product_id = h.product_id
    group by h.account_id
),
first_start as (
    select account_id, min(valid_from) as first_subscription_at from versions group by account_id
),
contract as (
    select c.account_id, pl.is_top_tier, pl.pricing_model as core_pricing_model,
           c.core_term_months, c.core_billing_period_months,
           cast(c.core_started_at as date) as started, c.core_term_months as term,
           greatest(1, floor(datediff('month', cast(c.core_started_at as date), p.as_of)
                             / c.core_term_months)) as k0
    from core c cross join p left join plans pl on pl.plan_id = c.core_plan_id
),
renewal as (
    select account_id, is_top_tier, core_pricing_model, core_term_months,
           core_billing_period_months,
           case when term is null or term <= 0 then null
                when cast(started + to_months(cast(k0 * term as integer)) as date) > p.as_of
                    then cast(started + to_months(cast(k0 * term as integer)) as date)
                else cast(started + to_months(cast((k0 + 1) * term as integer)) as date)
           end as renewal_date
    from contract cross join p
),
limits as (
    -- the effective limit: a held core plan's row, plus every held add-on's row for the metric
    select h.account_id, l.metric,
           cast(sum(case when l.is_per_unit then l.limit_value * h.quantity
                         else l.limit_value end) as double) as effective_limit,
           bool_or(h.product_family = 'core' and l.is_per_unit) as limit_is_per_unit
    from held h join plan_limits l on l.plan_id = h.plan_id
    group by h.account_id, l.metric
    having bool_or(h.product_family = 'core')
),
instants as (
    -- int_account_product_states_compared: every instant a version starts or ends (before
    -- the end of as_of: later ones cannot be the last movement before it)
    select i.* from (
        select account_id, valid_from as changed_at from versions
        union
        select account_id, valid_to as changed_at from versions where valid_to is not null
    ) i, p
    where i.changed_at < p.end_at
),
first_starts as (
    select account_id, min(valid_from) as first_started_at from versions group by account_id
),
product_states as (
    -- each product's state right before (valid_from < t <= valid_to) and right after
    -- (valid_from <= t < valid_to) the instant
    select i.account_id, i.changed_at, v.product_id,
           count(*) filter (where v.valid_from < i.changed_at) as versions_before,
           count(*) filter (where v.valid_to is null or v.valid_to > i.changed_at)
               as versions_after,
           cast(coalesce(sum(v.mrr) filter (where v.valid_from < i.changed_at), 0)
                as decimal(38, 6)) as mrr_before,
           cast(coalesce(sum(v.mrr) filter (where v.valid_to is null
                                            or v.valid_to > i.changed_at), 0)
                as decimal(38, 6)) as mrr_after,
           coalesce(sum(v.quantity) filter (where v.valid_from < i.changed_at), 0)
               as quantity_before,
           coalesce(sum(v.quantity) filter (where v.valid_to is null
                                            or v.valid_to > i.changed_at), 0) as quantity_after,
           max(v.tier_rank) filter (where v.valid_from < i.changed_at) as tier_rank_before,
           max(v.tier_rank) filter (where v.valid_to is null or v.valid_to > i.changed_at)
               as tier_rank_after
    from instants i
    join versions v
        on v.account_id = i.account_id and v.valid_from <= i.changed_at
        and (v.valid_to is null or v.valid_to >= i.changed_at)
    group by i.account_id, i.changed_at, v.product_id
),
account_states as (
    select ps.*,
           count(*) filter (where ps.versions_before > 0) over instant as account_products_before,
           count(*) filter (where ps.versions_after > 0) over instant as account_products_after,
           f.first_started_at < ps.changed_at as was_ever_active_before
    from product_states ps
    join first_starts f on f.account_id = ps.account_id
    window instant as (partition by ps.account_id, ps.changed_at)
),
classified as (
    -- int_expansion_events_classified
    select account_id, changed_at as event_at, mrr_before, mrr_after,
           case
               when versions_before = 0 and versions_after > 0 then
                   case when not was_ever_active_before then 'new'
                        when account_products_before = 0 then 'reactivation'
                        else 'cross_sell' end
               when versions_before > 0 and versions_after = 0 then
                   case when account_products_after = 0 then 'churn' else 'contraction' end
               when mrr_after > mrr_before then
                   case when tier_rank_after > tier_rank_before
                             or quantity_after > quantity_before then 'upsell'
                        else 'price_change' end
               when mrr_after < mrr_before then
                   case when tier_rank_after < tier_rank_before
                             or quantity_after < quantity_before then 'contraction'
                        else 'price_change' end
           end as movement_type
    from account_states
),
movements as (
    -- int_account_movements_snapshotted: the latest of each strictly before the end of as_of
    select c.account_id,
           max(c.event_at) filter (where c.movement_type in ('upsell', 'cross_sell')
                                   and c.mrr_after > c.mrr_before) as last_expansion_at,
           max(c.event_at) filter (where c.movement_type = 'contraction') as last_contraction_at
    from classified c, p where c.event_at < p.end_at group by c.account_id
),
held_products as (
    -- int_product_companions_measured: the products each account holds at the end of as_of
    select distinct account_id, product_id from held
),
holders as (select count(distinct account_id) as accounts_active from held_products),
product_counts as (
    select product_id, count(*) as accounts_holding from held_products group by product_id
),
pair_counts as (
    select a.product_id, b.product_id as companion_product_id, count(*) as accounts_holding_both
    from held_products a
    join held_products b on b.account_id = a.account_id and b.product_id != a.product_id
    group by a.product_id, b.product_id
),
pairs as (
    select pc.product_id, pc.companion_product_id, pr.product_name as companion_product_name,
           pc.accounts_holding_both,
           {_divide("pc.accounts_holding_both", "h.accounts_active")} as support,
           {_divide("pc.accounts_holding_both", "pn.accounts_holding")} as confidence,
           {
        _divide(
            _divide("pc.accounts_holding_both", "pn.accounts_holding"),
            _divide("cn.accounts_holding", "h.accounts_active"),
        )
    } as lift
    from pair_counts pc
    join product_counts pn on pn.product_id = pc.product_id
    join product_counts cn on cn.product_id = pc.companion_product_id
    cross join holders h
    left join products pr on pr.product_id = pc.companion_product_id
),
companion_pairs as (
    select pairs.*,
           support >= p.companion_min_support
               and accounts_holding_both >= p.companion_min_pair_accounts as is_frequent,
           support >= p.companion_min_support
               and accounts_holding_both >= p.companion_min_pair_accounts
               and lift > p.companion_min_lift as is_companion
    from pairs, p
),
companion_candidates as (
    -- int_account_companions_snapshotted: frequent companions of a held product, not held
    select h.account_id, c.companion_product_id, c.companion_product_name,
           bool_or(c.is_companion) as is_companion, max(c.confidence) as confidence,
           max(c.lift) as lift
    from held_products h
    join companion_pairs c on c.product_id = h.product_id and c.is_frequent
    where not exists (
        select 1 from held_products x
        where x.account_id = h.account_id and x.product_id = c.companion_product_id
    )
    group by h.account_id, c.companion_product_id, c.companion_product_name
),
companion_ranked as (
    select account_id,
           count(*) filter (where is_companion) over (partition by account_id)
               as companion_products_not_held,
           companion_product_id as top_companion_product_id,
           companion_product_name as top_companion_product_name
    from companion_candidates
    qualify row_number() over (
        partition by account_id
        order by is_companion desc, confidence desc, lift desc, companion_product_id asc
    ) = 1
),
usage_days as (
    -- one value per (account, metric, day) in the 90 days to as_of: the latest load's
    select u.account_id, u.metric, u.usage_date, arg_max(u.value, u._loaded_at) as value
    from raw.usage__usage_daily u, p
    where u.usage_date > p.as_of - 90 and u.usage_date <= p.as_of
      and u.account_id is not null and u.metric is not null and u.value is not null
    group by u.account_id, u.metric, u.usage_date
),
usage_windows as (
    select d.account_id, d.metric,
           cast(sum(d.exact) filter (where d.days_back < 7) as double) as sum_7d,
           count(*) filter (where d.days_back < 7) as reported_days_7d,
           cast(sum(d.exact) filter (where d.days_back < 28) as double) as sum_28d,
           count(*) filter (where d.days_back < 28) as reported_days_28d,
           cast(sum(d.exact) filter (where d.days_back >= 28 and d.days_back < 56) as double)
               as sum_prior_28d,
           count(*) filter (where d.days_back >= 28 and d.days_back < 56)
               as reported_days_prior_28d,
           cast(sum(d.exact) filter (where d.days_back < 30) as double) as sum_30d,
           count(*) filter (where d.days_back < 30) as reported_days_30d,
           cast(sum(d.exact) as double) as sum_90d,
           count(*) as reported_days_90d,
           cast(arg_max(d.value, d.usage_date) as double) as latest_value,
           count(*) filter (where d.days_back < 30 and d.value > 0) as active_days_30d,
           min(d.days_back) filter (where d.value > 0) as days_since_use
    from (select *, cast(p.as_of - usage_date as integer) as days_back,
                 cast(value as decimal(38, 6)) as exact
          from usage_days, p) d
    group by d.account_id, d.metric
),
measured as (
    -- every declared metric of every account, as marts.account_metric_snapshots
    select s.account_id, m.metric, m.aggregation, m.limit_period,
           case when m.aggregation = 'sum' then cast(coalesce(w.sum_7d, 0) as double)
                else {_divide("w.sum_7d", "w.reported_days_7d")} end as value_7d,
           case when m.aggregation = 'sum' then cast(coalesce(w.sum_30d, 0) as double)
                else {_divide("w.sum_30d", "w.reported_days_30d")} end as value_30d,
           case when m.aggregation = 'sum' then cast(coalesce(w.sum_90d, 0) as double)
                else {_divide("w.sum_90d", "w.reported_days_90d")} end as value_90d,
           w.latest_value,
           case when m.aggregation = 'sum'
                then {_divide("coalesce(w.sum_28d, 0)", "w.sum_prior_28d")} - 1
                else {mean_trend} - 1
           end as trend_28d,
           cast(coalesce(w.active_days_30d, 0) as integer) as active_days_30d,
           cast(w.days_since_use as integer) as days_since_use,
           l.effective_limit,
           coalesce(l.limit_is_per_unit, false) as limit_is_per_unit
    from spine s
    cross join declared m
    left join usage_windows w on w.account_id = s.account_id and w.metric = m.metric
    left join limits l
        on l.account_id = s.account_id and l.metric = m.metric and m.limit_period is not null
),
against_limit as (
    select *,
           case when limit_period = 'held' then latest_value
                when limit_period = 'day' and aggregation = 'sum' then value_30d / 30
                when limit_period = 'day' then value_30d
                when limit_period = 'month' and aggregation = 'sum' then value_30d
                when limit_period = 'month' then value_30d * 30
           end as usage_against_limit
    from measured
),
metric_features as (
    select a.*,
           case when a.effective_limit is null then null
                when a.effective_limit = 0 and coalesce(a.usage_against_limit, 0) = 0
                    then cast(1 as double)
                when a.effective_limit = 0 then p.utilization_cap
                when a.usage_against_limit is null then null
                else least(a.usage_against_limit / a.effective_limit, p.utilization_cap)
           end as utilization
    from against_limit a, p
),
highest_utilization as (
    select account_id, max(utilization) as max_limit_utilization,
           max(utilization) filter (where limit_is_per_unit) as per_unit_limit_utilization
    from metric_features where utilization is not null group by account_id
),
limit_pressure as (
    -- the metric at the highest utilization; ties go to the first metric name
    select h.account_id, h.max_limit_utilization, h.per_unit_limit_utilization,
           min(f.metric) as binding_limit_metric
    from highest_utilization h
    join metric_features f
        on f.account_id = h.account_id and f.utilization = h.max_limit_utilization
    group by h.account_id, h.max_limit_utilization, h.per_unit_limit_utilization
),
usage_pivot as (
    -- one column per usage feature of the champion, generated from the declaration
    select {pivot}account_id
    from metric_features group by account_id
),
tickets as (
    select trim(account_id) as account_id, {_clean("priority")} as priority, opened_at, closed_at
    from raw.crm__support_tickets where ticket_id is not null {_latest("trim(ticket_id)")}
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
    where response_id is not null {_latest("trim(response_id)", None)}
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
          {_latest("trim(activity_id)", None)}) a, p
    where a.occurred_at < p.end_at
    group by a.account_id, p.as_of
),
invoices as (
    select cu.account_id, i.issued_at, i.due_at, i.paid_at,
           case when {_clean("i.status")} = 'void' then i.updated_at end as voided_at
    from (select * from raw.billing__invoices where invoice_id is not null
          {_latest("trim(invoice_id)")}) i
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
           case when {
        _clean("stage")
    } != 'open' then coalesce(closed_at, updated_at) end as closed_at
    from raw.crm__opportunities where opportunity_id is not null
    {_latest("trim(opportunity_id)")}
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
    {select}
from spine s
cross join p
left join totals t on t.account_id = s.account_id
left join held_90 h90 on h90.account_id = s.account_id
left join core_units cs on cs.account_id = s.account_id
left join renewal r on r.account_id = s.account_id
left join first_start f on f.account_id = s.account_id
left join limit_pressure lp on lp.account_id = s.account_id
left join usage_pivot up on up.account_id = s.account_id
left join ticket_counts tc on tc.account_id = s.account_id
left join nps_latest n on n.account_id = s.account_id
left join activities ac on ac.account_id = s.account_id
left join invoice_counts ic on ic.account_id = s.account_id
left join opportunity_counts oc on oc.account_id = s.account_id
left join movements m on m.account_id = s.account_id
left join companion_ranked cr on cr.account_id = s.account_id
"""
