{#-
    Which subscription versions each account holds at the end of each snapshot date: one
    row per (snapshot_date, account_id, subscription_id). Held at the end of day d means
    valid_from < d + 1 day <= valid_to (or valid_to is null): a version that starts during d
    is held, one that ends exactly at midnight after d is still held on d.
    Incremental by snapshot date (macros/snapshot_incremental.sql, state in
    intermediate._incremental_builds): a date's holdings change only with the subscription
    versions held on it; `dbt build --full-refresh` gives the same rows.
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan(state='table') %}
with

snapshot_dates as (

    select * from {{ ref('int_snapshot_dates_selected') }}
    where {{ snapshot_dates_filter(plan) }}

),

versions as (

    select * from {{ ref('int_subscription_versions_ranged') }}

),

snapshot_ends as (

    select
        snapshot_date,
        cast({{ dbt.dateadd('day', 1, 'snapshot_date') }} as timestamp) as snapshot_end_at
    from snapshot_dates

),

final as (

    select
        snapshot_ends.snapshot_date,
        versions.account_id,
        versions.subscription_id,
        versions.change_id,
        versions.product_id,
        versions.product_family,
        versions.plan_id,
        versions.tier_rank,
        versions.quantity,
        versions.currency,
        versions.rate_month,
        versions.mrr_local,
        versions.mrr,
        versions.started_at,
        versions.term_months,
        versions.billing_period_months
    from snapshot_ends
    inner join versions
        on versions.valid_from < snapshot_ends.snapshot_end_at
        and (versions.valid_to is null or versions.valid_to >= snapshot_ends.snapshot_end_at)

)

select * from final
