{#-
    MRR history features of each account at each snapshot date, from events strictly
    before snapshot_end_at: MRR at the end of the day 90 days earlier, and the days since
    the latest expansion (upsell or cross-sell that added MRR) and the latest contraction.
    ASOF joins (latest row before an instant per account; the `asof_join` macro) keep this
    linear in the data on DuckDB.
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan() %}
with

spine as (

    {{ snapshot_spine(plan) }}

),

timeline as (

    select * from {{ ref('int_account_mrr_rolled_up') }}

),

events as (

    select * from {{ ref('int_expansion_events_classified') }}

),

expansions as (

    select
        account_id,
        event_at
    from events
    where is_expansion

),

contractions as (

    select
        account_id,
        event_at
    from events
    where movement_type = 'contraction'

),

lookups as (

    select
        spine.account_id,
        spine.snapshot_date,
        spine.snapshot_end_at,
        -- the end of the day 90 days before the snapshot date
        cast({{ dbt.dateadd('day', -89, 'spine.snapshot_date') }} as timestamp)
            as ninety_days_ago_end_at
    from spine

),

mrr_90d_ago as (

    {{ asof_join(
        'lookups', 'timeline', ['account_id'], 'ninety_days_ago_end_at', 'changed_at', ['mrr']
    ) }}

),

last_expansion as (

    {{ asof_join(
        'lookups', 'expansions', ['account_id'], 'snapshot_end_at', 'event_at', ['event_at']
    ) }}

),

last_contraction as (

    {{ asof_join(
        'lookups', 'contractions', ['account_id'], 'snapshot_end_at', 'event_at', ['event_at']
    ) }}

),

final as (

    select
        lookups.account_id,
        lookups.snapshot_date,
        cast(coalesce(mrr_90d_ago.mrr, 0) as decimal(38, 6)) as mrr_90d_ago,
        cast({{ dbt.datediff(
            'cast(last_expansion.event_at as date)', 'lookups.snapshot_date', 'day'
        ) }} as integer) as days_since_last_expansion,
        cast({{ dbt.datediff(
            'cast(last_contraction.event_at as date)', 'lookups.snapshot_date', 'day'
        ) }} as integer) as days_since_last_contraction,
        {{ snapshot_build_columns(plan) }}
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
