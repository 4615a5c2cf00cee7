{#-
    Survey (NPS) features of each account at each snapshot date: the latest response known at
    the end of the snapshot day (responded before snapshot_end_at), the one before it, and
    whether the latest is a recent promoter or detractor (vars nps_recent_days,
    promoter_min_score, detractor_max_score). No response gives nulls (and false).

    How: an ASOF join (the `asof_join` macro) finds the latest response before each
    snapshot's end.
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan() %}
with

spine as (

    {{ snapshot_spine(plan) }}

),

nps_responses as (

    select * from {{ ref('stg_crm__nps_responses') }}

),

nps_ordered as (

    select
        account_id,
        responded_at,
        score,
        lag(score) over (partition by account_id order by responded_at, response_id)
            as previous_score
    from nps_responses

),

nps_as_of as (

    {{ asof_join(
        'spine', 'nps_ordered', ['account_id'], 'snapshot_end_at', 'responded_at',
        ['responded_at', 'score', 'previous_score']
    ) }}

),

nps_latest as (

    select
        account_id,
        snapshot_date,
        score as nps_latest,
        previous_score as nps_previous,
        cast({{ dbt.datediff(
            'cast(responded_at as date)', 'snapshot_date', 'day'
        ) }} as integer) as days_since_nps
    from nps_as_of

),

final as (

    select
        spine.account_id,
        spine.snapshot_date,
        cast(nps_latest.nps_latest as integer) as nps_latest,
        cast(nps_latest.nps_previous as integer) as nps_previous,
        nps_latest.days_since_nps,
        coalesce(
            nps_latest.days_since_nps < {{ var('nps_recent_days') }}
            and nps_latest.nps_latest >= {{ var('promoter_min_score') }},
            false
        ) as is_promoter_90d,
        coalesce(
            nps_latest.days_since_nps < {{ var('nps_recent_days') }}
            and nps_latest.nps_latest <= {{ var('detractor_max_score') }},
            false
        ) as is_detractor_90d,
        {{ snapshot_build_columns(plan) }}
    from spine
    left join nps_latest
        on nps_latest.account_id = spine.account_id
        and nps_latest.snapshot_date = spine.snapshot_date

)

select * from final
