{#-
    Every declared usage metric of every account at every snapshot date: one row per
    (account_id, snapshot_date, metric) for each row of the snapshot spine and each metric of
    stg_config__usage_metrics, whether or not the account reported it. Definitions in
    DECISIONLOG.md ("Usage metrics"); the columns are the features of marts.account_features.
    Windows end at snapshot_date inclusive: "last N days" = (snapshot_date - N, snapshot_date].
      sum metrics           value_Nd = the window's sum (an unreported day is 0)
      level and distinct    value_Nd = the mean over the days reported in the window (null
                            when none: not measured)
      trend_28d             mean daily value of the last 28 days / of the 28 before, minus 1
                            (sum: sum / 28; else the mean over reported days); null when the
                            earlier mean is 0 or null
      usage_against_limit   what the limit is compared with, by the metric's limit_period:
                            held -> latest_value; day -> the mean daily value over 30 days;
                            month -> the 30-day total
      utilization           usage_against_limit / effective_limit, capped at var
                            utilization_cap; a limit of 0 is 1.0 when unused, else the cap;
                            null when unlimited or usage unknown
    The window aggregates come from int_account_usage_snapshotted and the effective limits
    from int_account_limits_snapshotted; only this model reads the declaration, so a changed
    declaration needs no rebuild of either.
    Incremental by snapshot date (macros/snapshot_incremental.sql, state in
    marts._incremental_builds): the declaration is in the build fingerprint; `dbt build
    --full-refresh` gives the same rows.
-#}
{%- set cap = 'cast(' ~ var('utilization_cap') ~ ' as ' ~ type_double() ~ ')' %}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan(state='table') %}
with

spine as (

    {{ snapshot_spine(plan) }}

),

usage_metrics as (

    select * from {{ ref('stg_config__usage_metrics') }}

),

usage as (

    select * from {{ ref('int_account_usage_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

limits as (

    select * from {{ ref('int_account_limits_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

measured as (

    select
        spine.account_id,
        spine.snapshot_date,
        usage_metrics.metric,
        usage_metrics.aggregation,
        usage_metrics.limit_period,
        case
            when usage_metrics.aggregation = 'sum'
            then cast(coalesce(usage.sum_7d, 0) as {{ type_double() }})
            else {{ safe_divide('usage.sum_7d', 'usage.reported_days_7d') }}
        end as value_7d,
        case
            when usage_metrics.aggregation = 'sum'
            then cast(coalesce(usage.sum_30d, 0) as {{ type_double() }})
            else {{ safe_divide('usage.sum_30d', 'usage.reported_days_30d') }}
        end as value_30d,
        case
            when usage_metrics.aggregation = 'sum'
            then cast(coalesce(usage.sum_90d, 0) as {{ type_double() }})
            else {{ safe_divide('usage.sum_90d', 'usage.reported_days_90d') }}
        end as value_90d,
        usage.latest_value,
        case
            -- both means are sums / 28, so their ratio is the ratio of the sums
            when usage_metrics.aggregation = 'sum'
            then {{ safe_divide('coalesce(usage.sum_28d, 0)', 'usage.sum_prior_28d') }} - 1
            else {{ safe_divide(
                safe_divide('usage.sum_28d', 'usage.reported_days_28d'),
                safe_divide('usage.sum_prior_28d', 'usage.reported_days_prior_28d')
            ) }} - 1
        end as trend_28d,
        coalesce(usage.active_days_30d, 0) as active_days_30d,
        usage.days_since_use,
        limits.effective_limit,
        coalesce(limits.limit_is_per_unit, false) as limit_is_per_unit
    from spine
    cross join usage_metrics
    left join usage
        on usage.account_id = spine.account_id
        and usage.snapshot_date = spine.snapshot_date
        and usage.metric = usage_metrics.metric
    -- a limit counts only for a metric declared with a limit_period
    left join limits
        on limits.account_id = spine.account_id
        and limits.snapshot_date = spine.snapshot_date
        and limits.metric = usage_metrics.metric
        and usage_metrics.limit_period is not null

),

against_limit as (

    select
        *,
        case
            when limit_period = 'held' then latest_value
            when limit_period = 'day' and aggregation = 'sum' then value_30d / 30
            when limit_period = 'day' then value_30d
            when limit_period = 'month' and aggregation = 'sum' then value_30d
            when limit_period = 'month' then value_30d * 30
        end as usage_against_limit
    from measured

),

final as (

    select
        account_id,
        snapshot_date,
        metric,
        aggregation,
        limit_period,
        value_7d,
        value_30d,
        value_90d,
        latest_value,
        trend_28d,
        cast(active_days_30d as integer) as active_days_30d,
        cast(days_since_use as integer) as days_since_use,
        effective_limit,
        limit_is_per_unit,
        usage_against_limit,
        case
            when effective_limit is null then null
            when effective_limit = 0 and coalesce(usage_against_limit, 0) = 0
            then cast(1 as {{ type_double() }})
            when effective_limit = 0 then {{ cap }}
            when usage_against_limit is null then null
            else least(usage_against_limit / effective_limit, {{ cap }})
        end as utilization,
        effective_limit - usage_against_limit as headroom
    from against_limit

)

select * from final
