{#-
    MRR history features of each account at each snapshot date, from events strictly
    before snapshot_end_at: MRR at the end of the day 90 days earlier, and the days since
    the latest expansion (upsell or cross-sell that added MRR) and the latest contraction.
    ASOF joins (latest row before an instant per account) keep this linear in the data.
-#}
with

spine as (

    select * from {{ ref('int_account_snapshots_spined') }}

),

timeline as (

    select * from {{ ref('int_account_mrr_timeline') }}

),

events as (

    select * from {{ ref('int_expansion_events_classified') }}

),

expansions as (

    select account_id, event_at
    from events
    where is_expansion

),

contractions as (

    select account_id, event_at
    from events
    where movement_type = 'contraction'

),

lookups as (

    select
        spine.account_id,
        spine.snapshot_date,
        spine.snapshot_end_at,
        cast(spine.snapshot_date - 90 + 1 as timestamp) as ninety_days_ago_end_at
    from spine

),

mrr_90d_ago as (

    select
        lookups.account_id,
        lookups.snapshot_date,
        timeline.mrr_usd
    from lookups
    asof left join timeline
        on timeline.account_id = lookups.account_id
        and lookups.ninety_days_ago_end_at > timeline.changed_at

),

last_expansion as (

    select
        lookups.account_id,
        lookups.snapshot_date,
        expansions.event_at
    from lookups
    asof left join expansions
        on expansions.account_id = lookups.account_id
        and lookups.snapshot_end_at > expansions.event_at

),

last_contraction as (

    select
        lookups.account_id,
        lookups.snapshot_date,
        contractions.event_at
    from lookups
    asof left join contractions
        on contractions.account_id = lookups.account_id
        and lookups.snapshot_end_at > contractions.event_at

),

final as (

    select
        lookups.account_id,
        lookups.snapshot_date,
        coalesce(mrr_90d_ago.mrr_usd, 0) as mrr_usd_90d_ago,
        cast(date_diff('day', cast(last_expansion.event_at as date), lookups.snapshot_date) as integer) as days_since_last_expansion,
        cast(date_diff('day', cast(last_contraction.event_at as date), lookups.snapshot_date) as integer) as days_since_last_contraction
    from lookups
    left join mrr_90d_ago
        on mrr_90d_ago.account_id = lookups.account_id
        and mrr_90d_ago.snapshot_date = lookups.snapshot_date
    left join last_expansion
        on last_expansion.account_id = lookups.account_id
        and last_expansion.snapshot_date = lookups.snapshot_date
    left join last_contraction
        on last_contraction.account_id = lookups.account_id
        and last_contraction.snapshot_date = lookups.snapshot_date

)

select * from final
