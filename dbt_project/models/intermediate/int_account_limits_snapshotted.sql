{#-
    The effective limit of each account on each limited metric at the end of each snapshot
    date (DECISIONLOG.md, "Plan limits"): the subscription versions held at the end of the day
    (int_account_holdings_snapshotted) joined to their plans' limits. A limit exists only when
    a held core-family plan has a row for the metric; it is then the sum, over every held
    subscription whose plan has a row (core and add-ons), of limit_value x (quantity when the
    row is per unit, else 1). Add-on rows without a core row give no row: the metric is
    unlimited. limit_is_per_unit is the core row's is_per_unit (more units of the core plan
    raise the limit). A limit of 0 is a limit.
    One row per (account_id, snapshot_date, metric) that has a limit; no row = unlimited.
    Incremental by snapshot date (macros/snapshot_incremental.sql, state in
    intermediate._incremental_builds): a date's limits change only with its holdings and the
    plans' limits; `dbt build --full-refresh` gives the same rows.
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan(state='table') %}
with

holdings as (

    select * from {{ ref('int_account_holdings_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

plan_limits as (

    select * from {{ ref('stg_billing__plan_limits') }}

),

held_limits as (

    select
        holdings.account_id,
        holdings.snapshot_date,
        plan_limits.metric,
        holdings.product_family = 'core' as is_core,
        plan_limits.is_per_unit,
        case
            when plan_limits.is_per_unit then plan_limits.limit_value * holdings.quantity
            else plan_limits.limit_value
        end as limit_amount
    from holdings
    inner join plan_limits
        on plan_limits.plan_id = holdings.plan_id

),

summed as (

    select
        account_id,
        snapshot_date,
        metric,
        cast(sum(limit_amount) as {{ type_double() }}) as effective_limit,
        {{ dbt.bool_or('is_core and is_per_unit') }} as limit_is_per_unit
    from held_limits
    group by account_id, snapshot_date, metric
    having {{ dbt.bool_or('is_core') }}

)

select * from summed
