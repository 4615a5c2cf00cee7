-- Two independent routes to an account's MRR at a snapshot must agree: the versions held at
-- the end of the day (account_snapshots.mrr) and the ASOF look-up of the MRR timeline.
with

snapshots as (

    select
        account_id,
        snapshot_date,
        mrr,
        is_active,
        cast({{ dbt.dateadd('day', 1, 'snapshot_date') }} as timestamp) as snapshot_end_at
    from {{ ref('account_snapshots') }}
    -- a daily build checks the dates it recomputed (macros/get_where_subquery.sql)
    where {{ recomputed_rows('account_snapshots', 'snapshot_date') }}

),

timeline as (

    select
        account_id,
        changed_at,
        mrr as timeline_mrr,
        is_active as timeline_is_active
    from {{ ref('int_account_mrr_rolled_up') }}

),

looked_up as (

    {{ asof_join(
        'snapshots', 'timeline', ['account_id'], 'snapshot_end_at', 'changed_at',
        ['timeline_mrr', 'timeline_is_active']
    ) }}

)

select *
from looked_up
where abs(mrr - coalesce(timeline_mrr, 0)) >= 0.01
    or is_active != coalesce(timeline_is_active, false)
