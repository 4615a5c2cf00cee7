{#-
    The raw window aggregates of every usage metric of each account at each snapshot date,
    from usage_date <= snapshot_date: one row per (account_id, snapshot_date, metric) with a
    reported value in the 90 days up to the snapshot. "Last N days" = (snapshot_date - N,
    snapshot_date]. Nothing here depends on the metric's declaration: sums and reported-day
    counts per window, the latest value, active days and days since use are the same for
    every aggregation, and marts.account_metric_snapshots turns them into the declared
    features (a sum metric's unreported day is 0, a level's is "not measured"). So adding,
    removing or redeclaring a metric needs no rebuild of these rows.

    How: each snapshot date is expanded to the 90 days it looks at (snapshot_date, days_back
    0-89), joined to daily usage on the date (a hash equi-join, every usage row meets the
    3-4 snapshots whose window covers it) and aggregated once per (account, snapshot, metric)
    with filtered aggregates for the 7/28/30/56/90-day windows. No per-account range join, no
    sort. The trend's windows are whole weeks (the last 28 days against the 28 before), so it
    does not move with the weekday a snapshot falls on.
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan(rows_per_account='usage_metrics') %}
{%- set lookback_days = 90 %}
{#- sums in DECIMAL: exact, so they do not depend on the order rows are added in (a sum of
    doubles differs in the last bits between runs, and an incremental build must equal a
    full one) -#}
{%- set exact = 'cast(usage_daily.value as decimal(38, 6))' %}
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
        usage_daily.metric,
        sum({{ exact }}) filter (where snapshot_days.days_back < 7) as sum_7d,
        count(*) filter (where snapshot_days.days_back < 7) as reported_days_7d,
        sum({{ exact }}) filter (where snapshot_days.days_back < 28) as sum_28d,
        count(*) filter (where snapshot_days.days_back < 28) as reported_days_28d,
        sum({{ exact }}) filter (
            where snapshot_days.days_back >= 28 and snapshot_days.days_back < 56
        ) as sum_prior_28d,
        count(*) filter (
            where snapshot_days.days_back >= 28 and snapshot_days.days_back < 56
        ) as reported_days_prior_28d,
        sum({{ exact }}) filter (where snapshot_days.days_back < 30) as sum_30d,
        count(*) filter (where snapshot_days.days_back < 30) as reported_days_30d,
        sum({{ exact }}) as sum_90d,
        count(*) as reported_days_90d,
        {{ latest_value('usage_daily.value', ['usage_daily.usage_date']) }} as latest_value,
        count(*) filter (
            where snapshot_days.days_back < 30 and usage_daily.value > 0
        ) as active_days_30d,
        min(snapshot_days.days_back) filter (where usage_daily.value > 0) as days_since_use
    from usage_daily
    inner join snapshot_days
        on snapshot_days.usage_date = usage_daily.usage_date
    group by usage_daily.account_id, snapshot_days.snapshot_date, usage_daily.metric

),

final as (

    select
        spine.account_id,
        spine.snapshot_date,
        windowed.metric,
        cast(windowed.sum_7d as {{ type_double() }}) as sum_7d,
        cast(windowed.reported_days_7d as integer) as reported_days_7d,
        cast(windowed.sum_28d as {{ type_double() }}) as sum_28d,
        cast(windowed.reported_days_28d as integer) as reported_days_28d,
        cast(windowed.sum_prior_28d as {{ type_double() }}) as sum_prior_28d,
        cast(windowed.reported_days_prior_28d as integer) as reported_days_prior_28d,
        cast(windowed.sum_30d as {{ type_double() }}) as sum_30d,
        cast(windowed.reported_days_30d as integer) as reported_days_30d,
        cast(windowed.sum_90d as {{ type_double() }}) as sum_90d,
        cast(windowed.reported_days_90d as integer) as reported_days_90d,
        cast(windowed.latest_value as {{ type_double() }}) as latest_value,
        cast(windowed.active_days_30d as integer) as active_days_30d,
        cast(windowed.days_since_use as integer) as days_since_use,
        {{ snapshot_build_columns(plan) }}
    from windowed
    -- accounts of the spine only (usage of accounts unknown to the CRM is ignored)
    inner join spine
        on spine.account_id = windowed.account_id
        and spine.snapshot_date = windowed.snapshot_date

)

select * from final
