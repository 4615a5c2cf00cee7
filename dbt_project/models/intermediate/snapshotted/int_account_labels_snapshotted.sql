{#-
    The labels of each account snapshot: what happened in the label window, the days
    (snapshot_date, snapshot_date + label_horizon_days], i.e. events with
    label_start_at <= event_at < label_end_at (an event on the snapshot day itself is a
    feature, not a label; one on day +horizon is in; one on day +horizon+1 is out).
    label_end_at never passes the label cutoff (as_of / end of data), so labels of recent
    snapshots are partial and flagged is_label_complete = false.
    Only events that add MRR count: upsell, cross_sell (is_expansion).
    Incremental by snapshot date with the label horizon in the plan
    (macros/snapshot_incremental.sql, labels=true): a build also recomputes the dates whose
    labels were not complete, and a changed record the dates up to the horizon before it.
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan(labels=true) %}
with

spine as (

    {{ snapshot_spine(plan) }}

),

events as (

    select * from {{ ref('int_expansion_events_classified') }}

),

expansions as (

    select
        account_id,
        event_at,
        movement_type,
        mrr_change
    from events
    where is_expansion

),

windowed as (

    select
        spine.account_id,
        spine.snapshot_date,
        {{ dbt.bool_or("expansions.movement_type = 'upsell'") }} as has_upsell,
        {{ dbt.bool_or("expansions.movement_type = 'cross_sell'") }} as has_cross_sell,
        sum(expansions.mrr_change) as expansion_mrr
    from spine
    inner join expansions
        on expansions.account_id = spine.account_id
        and expansions.event_at >= spine.label_start_at
        and expansions.event_at < spine.label_end_at
    group by spine.account_id, spine.snapshot_date

),

final as (

    select
        spine.account_id,
        spine.snapshot_date,
        coalesce(windowed.has_upsell or windowed.has_cross_sell, false) as label_expansion,
        coalesce(windowed.has_upsell, false) as label_upsell,
        coalesce(windowed.has_cross_sell, false) as label_cross_sell,
        cast(coalesce(windowed.expansion_mrr, 0) as decimal(38, 6)) as expansion_mrr_next,
        spine.is_label_complete,
        {{ snapshot_build_columns(plan) }}
    from spine
    left join windowed
        on windowed.account_id = spine.account_id
        and windowed.snapshot_date = spine.snapshot_date

)

select * from final
