{#-
    Sales-activity features of each account at each snapshot date, from activities that
    occurred before snapshot_end_at: counts in the last 30 and 90 days ("last N days" =
    (snapshot_date - N, snapshot_date]) and the days since the latest one. No activity gives
    zeros and nulls.

    How: activities are range-joined to the (few) snapshot dates (macros/snapshot_range_join.sql)
    and counted per (account, snapshot); the latest activity is an ASOF join (the `asof_join`
    macro).
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan() %}
with

spine as (

    {{ snapshot_spine(plan) }}

),

activities as (

    select * from {{ ref('stg_crm__activities') }}

),

snapshots as (

    select distinct
        snapshot_date,
        snapshot_end_at
    from spine

),

activities_recent as (

    select
        activities.account_id,
        snapshots.snapshot_date,
        count(*) filter (
            where activities.occurred_at
            >= {{ dbt.dateadd('day', -30, 'snapshots.snapshot_end_at') }}
        ) as activities_30d,
        count(*) filter (where activities.activity_type in ('meeting', 'qbr')) as meetings_90d
    from activities
    inner join snapshots
        on {{ snapshot_range_join('activities.occurred_at', days=90) }}
    group by activities.account_id, snapshots.snapshot_date

),

activity_as_of as (

    {{ asof_join(
        'spine', 'activities', ['account_id'], 'snapshot_end_at', 'occurred_at', ['occurred_at']
    ) }}

),

last_activity as (

    select
        account_id,
        snapshot_date,
        cast({{ dbt.datediff(
            'cast(occurred_at as date)', 'snapshot_date', 'day'
        ) }} as integer) as days_since_last_activity
    from activity_as_of

),

final as (

    select
        spine.account_id,
        spine.snapshot_date,
        cast(coalesce(activities_recent.activities_30d, 0) as integer) as activities_30d,
        cast(coalesce(activities_recent.meetings_90d, 0) as integer) as meetings_90d,
        last_activity.days_since_last_activity,
        {{ snapshot_build_columns(plan) }}
    from spine
    left join activities_recent
        on activities_recent.account_id = spine.account_id
        and activities_recent.snapshot_date = spine.snapshot_date
    left join last_activity
        on last_activity.account_id = spine.account_id
        and last_activity.snapshot_date = spine.snapshot_date

)

select * from final
