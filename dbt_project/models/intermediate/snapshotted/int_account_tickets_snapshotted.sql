{#-
    Support-ticket features of each account at each snapshot date. Only what was known at the
    end of the snapshot day: tickets opened before snapshot_end_at; a ticket closed after the
    snapshot day counts as still open on it. "Last N days" = (snapshot_date - N, snapshot_date].
    No tickets gives zeros.

    How: tickets are range-joined to the (few) snapshot dates, not to every account snapshot
    (macros/snapshot_range_join.sql), counted per (account, snapshot) and left-joined to the
    spine.
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan() %}
with

spine as (

    {{ snapshot_spine(plan) }}

),

support_tickets as (

    select * from {{ ref('stg_crm__support_tickets') }}

),

snapshots as (

    select distinct
        snapshot_date,
        snapshot_end_at
    from spine

),

tickets_open as (

    select
        support_tickets.account_id,
        snapshots.snapshot_date,
        count(*) as tickets_open,
        count(*) filter (where support_tickets.priority = 'urgent') as urgent_tickets_open
    from support_tickets
    inner join snapshots
        on {{ snapshot_range_join(
            'support_tickets.opened_at', ended_at='support_tickets.closed_at'
        ) }}
    group by support_tickets.account_id, snapshots.snapshot_date

),

tickets_recent as (

    select
        support_tickets.account_id,
        snapshots.snapshot_date,
        count(*) as tickets_90d
    from support_tickets
    inner join snapshots
        on {{ snapshot_range_join('support_tickets.opened_at', days=90) }}
    group by support_tickets.account_id, snapshots.snapshot_date

),

final as (

    select
        spine.account_id,
        spine.snapshot_date,
        cast(coalesce(tickets_open.tickets_open, 0) as integer) as tickets_open,
        cast(coalesce(tickets_open.urgent_tickets_open, 0) as integer) as urgent_tickets_open,
        cast(coalesce(tickets_recent.tickets_90d, 0) as integer) as tickets_90d,
        {{ snapshot_build_columns(plan) }}
    from spine
    left join tickets_open
        on tickets_open.account_id = spine.account_id
        and tickets_open.snapshot_date = spine.snapshot_date
    left join tickets_recent
        on tickets_recent.account_id = spine.account_id
        and tickets_recent.snapshot_date = spine.snapshot_date

)

select * from final
