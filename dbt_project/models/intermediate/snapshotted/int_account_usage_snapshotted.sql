{#-
    Usage features of each account at each snapshot date, from usage_date <= snapshot_date.
    "Last N days" = (snapshot_date - N, snapshot_date]. Averages are over the days on which
    the metric was reported (a day without a row is "not measured", not zero); sums treat
    unreported days as zero.

    How: each snapshot date is expanded to the 90 days it looks at (snapshot_date, days_back
    0-89), joined to daily usage on the date (a hash equi-join, every usage row meets the
    3-4 snapshots whose window covers it) and aggregated once per (account, snapshot) with
    filtered aggregates for the 7/30/60/90-day windows. No per-account range join, no sort.
    storage_gb_latest is the latest level reported within the 90 days. The trend compares two
    28-day windows (last 4 weeks against the 4 before): whole weeks, so it does not move with
    the weekday a snapshot falls on (30-day windows hold 2 extra weekdays that differ).
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan() %}
{%- set lookback_days = 90 %}
with

spine as (

    {{ snapshot_spine(plan) }}

),

usage_daily as (

    -- only the days the recomputed snapshot dates look back on
    select * from {{ ref('stg_usage__usage_daily') }}
    where {{ snapshot_lookback_filter(plan, 'usage_date', lookback_days) }}

),

snapshot_days as (

    select
        snapshots.snapshot_date,
        cast({{ dbt.dateadd('day', '-days_back.n', 'snapshots.snapshot_date') }} as date)
            as usage_date,
        cast(days_back.n as integer) as days_back
    from (select distinct snapshot_date from spine) as snapshots
    cross join {{ integer_series(0, lookback_days - 1, 'days_back', 'n') }}

),

windowed as (

    select
        usage_daily.account_id,
        snapshot_days.snapshot_date,
        sum(usage_daily.active_users) filter (where snapshot_days.days_back < 7)
            as active_users_sum_7d,
        count(usage_daily.active_users) filter (where snapshot_days.days_back < 7)
            as active_users_days_7d,
        sum(usage_daily.active_users) filter (where snapshot_days.days_back < 30)
            as active_users_sum_30d,
        count(usage_daily.active_users) filter (where snapshot_days.days_back < 30)
            as active_users_days_30d,
        sum(usage_daily.active_users) filter (where snapshot_days.days_back < 28)
            as active_users_sum_28d,
        count(usage_daily.active_users) filter (where snapshot_days.days_back < 28)
            as active_users_days_28d,
        sum(usage_daily.active_users) filter (
            where snapshot_days.days_back >= 28 and snapshot_days.days_back < 56
        ) as active_users_sum_prior_28d,
        count(usage_daily.active_users) filter (
            where snapshot_days.days_back >= 28 and snapshot_days.days_back < 56
        ) as active_users_days_prior_28d,
        sum(usage_daily.active_users) as active_users_sum_90d,
        count(usage_daily.active_users) as active_users_days_90d,
        coalesce(sum(usage_daily.api_calls) filter (where snapshot_days.days_back < 30), 0)
            as api_calls_30d,
        sum(usage_daily.features_used) filter (where snapshot_days.days_back < 30)
            as features_used_sum_30d,
        count(usage_daily.features_used) filter (where snapshot_days.days_back < 30)
            as features_used_days_30d,
        {{ latest_value(
            'usage_daily.storage_gb', ['usage_daily.usage_date'], 'usage_daily.storage_gb is not null'
        ) }} as storage_gb_latest
    from usage_daily
    inner join snapshot_days
        on snapshot_days.usage_date = usage_daily.usage_date
    group by usage_daily.account_id, snapshot_days.snapshot_date

),

averaged as (

    select
        account_id,
        snapshot_date,
        {{ safe_divide('active_users_sum_7d', 'active_users_days_7d') }} as active_users_7d_avg,
        {{ safe_divide('active_users_sum_30d', 'active_users_days_30d') }} as active_users_30d_avg,
        {{ safe_divide('active_users_sum_90d', 'active_users_days_90d') }} as active_users_90d_avg,
        {{ safe_divide('active_users_sum_28d', 'active_users_days_28d') }} as active_users_28d_avg,
        {{ safe_divide('active_users_sum_prior_28d', 'active_users_days_prior_28d') }}
            as active_users_prior_28d_avg,
        api_calls_30d,
        storage_gb_latest,
        {{ safe_divide('features_used_sum_30d', 'features_used_days_30d') }}
            as features_used_30d_avg
    from windowed

),

final as (

    select
        spine.account_id,
        spine.snapshot_date,
        averaged.active_users_7d_avg,
        averaged.active_users_30d_avg,
        averaged.active_users_90d_avg,
        {{ safe_divide(
            'averaged.active_users_28d_avg', 'averaged.active_users_prior_28d_avg'
        ) }} - 1 as active_users_trend_28d,
        cast(averaged.api_calls_30d as {{ type_double() }}) as api_calls_30d,
        averaged.storage_gb_latest,
        averaged.features_used_30d_avg,
        {{ snapshot_build_columns(plan) }}
    from spine
    left join averaged
        on averaged.account_id = spine.account_id
        and averaged.snapshot_date = spine.snapshot_date

)

select * from final
