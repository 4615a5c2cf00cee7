{#-
    The health score and loyalty stage of each account at each snapshot date, from what was
    known at the end of the snapshot day. Rules and thresholds: DECISIONLOG.md, "Health and
    loyalty" (each a dbt var). Components are integers 0-100; all are null when the account
    holds nothing (inactive).
      health_adoption    the mean of four shares over the declared usage metrics
                         (marts.account_metric_snapshots): breadth (metrics used in the last
                         30 days), frequency (active days of the metrics used, full at
                         adoption_full_active_days), momentum (metrics used that did not fall
                         more than adoption_max_decline over 28 days) and, when the plan limits
                         a metric above 0, utilization (usage against those limits, full at
                         adoption_full_utilization). No usage: 0. No metric declared: null.
      health_engagement  50 points for the recency of the last CRM activity, 30 for the
                         activities of the last 30 days, 20 for meetings / QBRs in 90 days.
      health_support     100 less points per ticket of the last 90 days, per open ticket and
                         per open urgent ticket; at least 0.
      health_sentiment   10 x the latest NPS answer, drifting to a neutral 50 as the answer
                         ages from nps_recent_days to nps_stale_days; null when never answered.
      health_score       the mean of the components that are not null.
      loyalty_stage      new (no repeat purchase yet), repeater (at least one:
                         int_account_repeat_purchases_listed), promoter (a repeater whose NPS
                         answer of the last nps_stale_days is a promoter), fan (a promoter
                         loyalty_fan_min_tenure_days after its first subscription that has
                         expanded at least loyalty_fan_min_expansions times).
    Reads the declared usage features of marts.account_metric_snapshots, as account_snapshots
    does for limit pressure: one definition of each usage feature.
    Incremental by snapshot date (macros/snapshot_incremental.sql, state in
    intermediate._incremental_builds): the declaration is in the build fingerprint; `dbt
    build --full-refresh` gives the same rows.
-#}
{%- set recent_days = var('nps_recent_days') %}
{%- set stale_days = var('nps_stale_days') %}
{%- set limit_share = safe_divide('coalesce(utilization, 0)', var('adoption_full_utilization')) %}
{%- set is_recent_promoter = 'coalesce(nps_latest >= ' ~ var('promoter_min_score')
    ~ ' and days_since_nps < ' ~ stale_days ~ ', false)' %}
{%- set recency_days = var('engagement_recency_days') %}
{%- set urgent_points = var('support_points_per_urgent_open_ticket') %}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan(state='table') %}
with

spine as (

    {{ snapshot_spine(plan) }}

),

contracts as (

    select * from {{ ref('int_account_contracts_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

metric_snapshots as (

    select * from {{ ref('account_metric_snapshots') }}
    where {{ snapshot_dates_filter(plan) }}

),

activities as (

    select * from {{ ref('int_account_activities_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

tickets as (

    select * from {{ ref('int_account_tickets_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

nps as (

    select * from {{ ref('int_account_nps_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

purchases as (

    select * from {{ ref('int_account_repeat_purchases_listed') }}

),

metric_use as (

    select
        account_id,
        snapshot_date,
        active_days_30d > 0 as is_used,
        least({{ safe_divide('active_days_30d', var('adoption_full_active_days')) }}, 1.0)
            as active_day_share,
        coalesce(trend_28d < -{{ var('adoption_max_decline') }}, false) as is_declining,
        case
            when effective_limit > 0 then least({{ limit_share }}, 1.0)
        end as limit_use_share
    from metric_snapshots

),

adoption_shares as (

    select
        account_id,
        snapshot_date,
        {{ safe_divide('count(case when is_used then 1 end)', 'count(*)') }} as breadth_share,
        coalesce(avg(case when is_used then active_day_share end), 0) as frequency_share,
        coalesce({{ safe_divide(
            'count(case when is_used and not is_declining then 1 end)',
            'count(case when is_used then 1 end)'
        ) }}, 0) as momentum_share,
        avg(limit_use_share) as utilization_share
    from metric_use
    group by account_id, snapshot_date

),

adoption as (

    select
        account_id,
        snapshot_date,
        {{ score_0_100(
            '(breadth_share + frequency_share + momentum_share'
            ~ ' + coalesce(utilization_share, 0))'
            ~ ' / (case when utilization_share is null then 3 else 4 end)'
        ) }} as health_adoption
    from adoption_shares

),

purchase_instants as (

    -- one row per instant, so the running totals of an instant are never split
    select
        account_id,
        purchased_at,
        count(*) as purchases,
        count(case when purchase_type in ('upsell', 'cross_sell') then 1 end) as expansions
    from purchases
    group by account_id, purchased_at

),

purchase_totals as (

    select
        account_id,
        purchased_at,
        sum(purchases) over (
            partition by account_id order by purchased_at rows unbounded preceding
        ) as repeat_purchases,
        sum(expansions) over (
            partition by account_id order by purchased_at rows unbounded preceding
        ) as expansions
    from purchase_instants

),

purchases_as_of as (

    {{ asof_join(
        'spine', 'purchase_totals', ['account_id'], 'snapshot_end_at', 'purchased_at',
        ['repeat_purchases', 'expansions']
    ) }}

),

components as (

    -- the shares each component is made of, 0..1
    select
        spine.account_id,
        spine.snapshot_date,
        coalesce(contracts.is_active, false) as is_active,
        cast({{ dbt.datediff(
            'cast(contracts.first_subscription_at as date)', 'spine.snapshot_date', 'day'
        ) }} as integer) as tenure_days,
        cast(coalesce(purchases_as_of.repeat_purchases, 0) as integer) as repeat_purchases,
        cast(coalesce(purchases_as_of.expansions, 0) as integer) as expansions,
        nps.nps_latest,
        nps.days_since_nps,
        adoption.health_adoption,
        greatest(0, 1 - {{ safe_divide(
            'coalesce(activities.days_since_last_activity, ' ~ recency_days ~ ')', recency_days
        ) }}) as recency_share,
        least({{ safe_divide(
            'coalesce(activities.activities_30d, 0)', var('engagement_full_activities_30d')
        ) }}, 1) as activity_share,
        least({{ safe_divide(
            'coalesce(activities.meetings_90d, 0)', var('engagement_full_meetings_90d')
        ) }}, 1) as meeting_share,
        100
        - {{ var('support_points_per_ticket_90d') }} * coalesce(tickets.tickets_90d, 0)
        - {{ var('support_points_per_open_ticket') }} * coalesce(tickets.tickets_open, 0)
        - {{ urgent_points }} * coalesce(tickets.urgent_tickets_open, 0) as support_points,
        -- an answer's weight: 1 up to nps_recent_days old, 0 from nps_stale_days, linear between
        least(1, greatest(0, {{ safe_divide(
            stale_days ~ ' - nps.days_since_nps', [stale_days - recent_days, 1] | max
        ) }})) as nps_weight
    from spine
    left join contracts
        on contracts.account_id = spine.account_id
        and contracts.snapshot_date = spine.snapshot_date
    left join adoption
        on adoption.account_id = spine.account_id
        and adoption.snapshot_date = spine.snapshot_date
    left join activities
        on activities.account_id = spine.account_id
        and activities.snapshot_date = spine.snapshot_date
    left join tickets
        on tickets.account_id = spine.account_id
        and tickets.snapshot_date = spine.snapshot_date
    left join nps
        on nps.account_id = spine.account_id
        and nps.snapshot_date = spine.snapshot_date
    left join purchases_as_of
        on purchases_as_of.account_id = spine.account_id
        and purchases_as_of.snapshot_date = spine.snapshot_date

),

scored as (

    select
        *,
        {{ score_0_100('0.5 * recency_share + 0.3 * activity_share + 0.2 * meeting_share') }}
            as health_engagement,
        cast(greatest(0, support_points) as integer) as health_support,
        {{ score_0_100('0.5 + (nps_latest / 10.0 - 0.5) * nps_weight') }} as health_sentiment
    from components

),

staged as (

    select
        *,
        case
            when repeat_purchases = 0 then 'new'
            when not {{ is_recent_promoter }} then 'repeater'
            when tenure_days >= {{ var('loyalty_fan_min_tenure_days') }}
                and expansions >= {{ var('loyalty_fan_min_expansions') }}
            then 'fan'
            else 'promoter'
        end as loyalty_stage
    from scored

),

final as (

    -- an account that holds nothing has no health and no stage
    select
        account_id,
        snapshot_date,
        repeat_purchases,
        expansions,
        case when is_active then health_adoption end as health_adoption,
        case when is_active then health_engagement end as health_engagement,
        case when is_active then health_support end as health_support,
        case when is_active then health_sentiment end as health_sentiment,
        case when is_active then {{ score_0_100(
            '(coalesce(health_adoption, 0) + health_engagement + health_support'
            ~ ' + coalesce(health_sentiment, 0)) / 100.0 / ('
            ~ '2 + case when health_adoption is null then 0 else 1 end'
            ~ ' + case when health_sentiment is null then 0 else 1 end)'
        ) }} end as health_score,
        case when is_active then loyalty_stage end as loyalty_stage
    from staged

)

select * from final
