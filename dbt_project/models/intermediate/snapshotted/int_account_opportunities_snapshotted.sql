{#-
    Sales-pipeline features of each account at each snapshot date: opportunities open at the
    end of the snapshot day (created before snapshot_end_at, not closed by then: one closed
    after the day is still open on it) and opportunities won in the last 365 days. No
    opportunities gives zeros.

    How: opportunities are range-joined to the (few) snapshot dates
    (macros/snapshot_range_join.sql), counted per (account, snapshot) and left-joined to the
    spine.
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan() %}
with

spine as (

    {{ snapshot_spine(plan) }}

),

opportunities as (

    select * from {{ ref('stg_crm__opportunities') }}

),

snapshots as (

    select distinct
        snapshot_date,
        snapshot_end_at
    from spine

),

opportunity_dates as (

    select
        account_id,
        stage,
        created_at,
        -- a closed opportunity without a close date is taken as closed at its last update
        case when stage != 'open' then coalesce(closed_at, updated_at) end as closed_at
    from opportunities

),

opportunities_open as (

    select
        opportunity_dates.account_id,
        snapshots.snapshot_date,
        count(*) as opportunities_open
    from opportunity_dates
    inner join snapshots
        on {{ snapshot_range_join(
            'opportunity_dates.created_at', ended_at='opportunity_dates.closed_at'
        ) }}
    group by opportunity_dates.account_id, snapshots.snapshot_date

),

opportunities_won as (

    select
        opportunity_dates.account_id,
        snapshots.snapshot_date,
        count(*) as opportunities_won_365d
    from opportunity_dates
    inner join snapshots
        on {{ snapshot_range_join('opportunity_dates.closed_at', days=365) }}
    where opportunity_dates.stage = 'closed_won'
    group by opportunity_dates.account_id, snapshots.snapshot_date

),

final as (

    select
        spine.account_id,
        spine.snapshot_date,
        cast(coalesce(opportunities_open.opportunities_open, 0) as integer)
            as opportunities_open,
        cast(coalesce(opportunities_won.opportunities_won_365d, 0) as integer)
            as opportunities_won_365d,
        {{ snapshot_build_columns(plan) }}
    from spine
    left join opportunities_open
        on opportunities_open.account_id = spine.account_id
        and opportunities_open.snapshot_date = spine.snapshot_date
    left join opportunities_won
        on opportunities_won.account_id = spine.account_id
        and opportunities_won.snapshot_date = spine.snapshot_date

)

select * from final
