-- Two independent routes to an account's MRR at a snapshot must agree: the versions held at
-- the end of the day (account_snapshots.mrr_usd) and the ASOF look-up of the MRR timeline.
with

snapshots as (

    select * from {{ ref('account_snapshots') }}

),

timeline as (

    select * from {{ ref('int_account_mrr_timeline') }}

),

looked_up as (

    select
        snapshots.account_id,
        snapshots.snapshot_date,
        snapshots.mrr_usd,
        snapshots.is_active,
        coalesce(timeline.mrr_usd, 0) as timeline_mrr_usd,
        coalesce(timeline.is_active, false) as timeline_is_active
    from snapshots
    asof left join timeline
        on timeline.account_id = snapshots.account_id
        and cast(snapshots.snapshot_date + 1 as timestamp) > timeline.changed_at

)

select *
from looked_up
where abs(mrr_usd - timeline_mrr_usd) >= 0.01
    or is_active != timeline_is_active
