{#-
    Support, survey, sales-activity, billing-health and pipeline features of each account at
    each snapshot date. Only what was known at the end of the snapshot day: events with a
    timestamp before snapshot_end_at; a ticket, invoice or opportunity closed after the
    snapshot day counts as still open on it. "Last N days" = (snapshot_date - N, snapshot_date].
    Every source here is optional: an empty table gives zeros (counts) and nulls (latest values).

    How: each event table is range-joined to the (few) snapshot dates, not to every account
    snapshot, so a row meets only the snapshots it counts for; the counts are then grouped
    per (account, snapshot) and left-joined to the spine. Latest-value features (NPS, last
    activity) are ASOF joins (the `asof_join` macro).
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

nps_responses as (

    select * from {{ ref('stg_crm__nps_responses') }}

),

activities as (

    select * from {{ ref('stg_crm__activities') }}

),

opportunities as (

    select * from {{ ref('stg_crm__opportunities') }}

),

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

customers as (

    select * from {{ ref('stg_billing__customers') }}

),

snapshots as (

    select distinct snapshot_date, snapshot_end_at
    from spine

),

-- tickets ---------------------------------------------------------------------------------

tickets_open as (

    select
        support_tickets.account_id,
        snapshots.snapshot_date,
        count(*) as tickets_open,
        count(*) filter (where support_tickets.priority = 'urgent') as urgent_tickets_open
    from support_tickets
    inner join snapshots
        on support_tickets.opened_at < snapshots.snapshot_end_at
        and coalesce(support_tickets.closed_at, {{ end_of_time() }}) >= snapshots.snapshot_end_at
    group by support_tickets.account_id, snapshots.snapshot_date

),

tickets_recent as (

    select
        support_tickets.account_id,
        snapshots.snapshot_date,
        count(*) as tickets_90d
    from support_tickets
    inner join snapshots
        on support_tickets.opened_at < snapshots.snapshot_end_at
        and support_tickets.opened_at >= {{ dbt.dateadd('day', -90, 'snapshots.snapshot_end_at') }}
    group by support_tickets.account_id, snapshots.snapshot_date

),

-- NPS -------------------------------------------------------------------------------------

nps_ordered as (

    select
        account_id,
        responded_at,
        score,
        lag(score) over (partition by account_id order by responded_at, response_id) as previous_score
    from nps_responses

),

nps_as_of as (

    {{ asof_join('spine', 'nps_ordered', ['account_id'], 'snapshot_end_at', 'responded_at', ['responded_at', 'score', 'previous_score']) }}

),

nps_latest as (

    select
        account_id,
        snapshot_date,
        score as nps_latest,
        previous_score as nps_previous,
        cast({{ dbt.datediff('cast(responded_at as date)', 'snapshot_date', 'day') }} as integer) as days_since_nps
    from nps_as_of

),

-- activities ------------------------------------------------------------------------------

activities_recent as (

    select
        activities.account_id,
        snapshots.snapshot_date,
        count(*) filter (where activities.occurred_at >= {{ dbt.dateadd('day', -30, 'snapshots.snapshot_end_at') }}) as activities_30d,
        count(*) filter (where activities.activity_type in ('meeting', 'qbr')) as meetings_90d
    from activities
    inner join snapshots
        on activities.occurred_at < snapshots.snapshot_end_at
        and activities.occurred_at >= {{ dbt.dateadd('day', -90, 'snapshots.snapshot_end_at') }}
    group by activities.account_id, snapshots.snapshot_date

),

activity_as_of as (

    {{ asof_join('spine', 'activities', ['account_id'], 'snapshot_end_at', 'occurred_at', ['occurred_at']) }}

),

last_activity as (

    select
        account_id,
        snapshot_date,
        cast({{ dbt.datediff('cast(occurred_at as date)', 'snapshot_date', 'day') }} as integer) as days_since_last_activity
    from activity_as_of

),

-- invoices --------------------------------------------------------------------------------

account_invoices as (

    select
        customers.account_id,
        invoices.issued_at,
        invoices.due_at,
        invoices.paid_at,
        -- a void invoice stops counting from the moment it was voided (its last update)
        case when invoices.status = 'void' then invoices.updated_at end as voided_at
    from invoices
    inner join customers
        on customers.customer_id = invoices.customer_id

),

invoices_paid_late as (

    select
        account_invoices.account_id,
        snapshots.snapshot_date,
        count(*) as invoices_paid_late_365d
    from account_invoices
    inner join snapshots
        on account_invoices.paid_at < snapshots.snapshot_end_at
        and account_invoices.paid_at >= {{ dbt.dateadd('day', -365, 'snapshots.snapshot_end_at') }}
    where account_invoices.paid_at > account_invoices.due_at
    group by account_invoices.account_id, snapshots.snapshot_date

),

invoices_overdue as (

    select
        account_invoices.account_id,
        snapshots.snapshot_date,
        count(*) as invoices_overdue_open
    from account_invoices
    inner join snapshots
        on account_invoices.due_at < snapshots.snapshot_end_at
        and least(
            coalesce(account_invoices.paid_at, {{ end_of_time() }}),
            coalesce(account_invoices.voided_at, {{ end_of_time() }})
        ) >= snapshots.snapshot_end_at
        and account_invoices.issued_at < snapshots.snapshot_end_at
    group by account_invoices.account_id, snapshots.snapshot_date

),

-- opportunities ---------------------------------------------------------------------------

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
        on opportunity_dates.created_at < snapshots.snapshot_end_at
        and coalesce(opportunity_dates.closed_at, {{ end_of_time() }}) >= snapshots.snapshot_end_at
    group by opportunity_dates.account_id, snapshots.snapshot_date

),

opportunities_won as (

    select
        opportunity_dates.account_id,
        snapshots.snapshot_date,
        count(*) as opportunities_won_365d
    from opportunity_dates
    inner join snapshots
        on opportunity_dates.closed_at < snapshots.snapshot_end_at
        and opportunity_dates.closed_at >= {{ dbt.dateadd('day', -365, 'snapshots.snapshot_end_at') }}
    where opportunity_dates.stage = 'closed_won'
    group by opportunity_dates.account_id, snapshots.snapshot_date

),

final as (

    select
        spine.account_id,
        spine.snapshot_date,
        cast(coalesce(tickets_open.tickets_open, 0) as integer) as tickets_open,
        cast(coalesce(tickets_open.urgent_tickets_open, 0) as integer) as urgent_tickets_open,
        cast(coalesce(tickets_recent.tickets_90d, 0) as integer) as tickets_90d,
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
        cast(coalesce(activities_recent.activities_30d, 0) as integer) as activities_30d,
        cast(coalesce(activities_recent.meetings_90d, 0) as integer) as meetings_90d,
        last_activity.days_since_last_activity,
        cast(coalesce(invoices_paid_late.invoices_paid_late_365d, 0) as integer) as invoices_paid_late_365d,
        cast(coalesce(invoices_overdue.invoices_overdue_open, 0) as integer) as invoices_overdue_open,
        cast(coalesce(opportunities_open.opportunities_open, 0) as integer) as opportunities_open,
        cast(coalesce(opportunities_won.opportunities_won_365d, 0) as integer) as opportunities_won_365d,
        {{ snapshot_build_columns(plan) }}
    from spine
    left join tickets_open
        on tickets_open.account_id = spine.account_id
        and tickets_open.snapshot_date = spine.snapshot_date
    left join tickets_recent
        on tickets_recent.account_id = spine.account_id
        and tickets_recent.snapshot_date = spine.snapshot_date
    left join nps_latest
        on nps_latest.account_id = spine.account_id
        and nps_latest.snapshot_date = spine.snapshot_date
    left join activities_recent
        on activities_recent.account_id = spine.account_id
        and activities_recent.snapshot_date = spine.snapshot_date
    left join last_activity
        on last_activity.account_id = spine.account_id
        and last_activity.snapshot_date = spine.snapshot_date
    left join invoices_paid_late
        on invoices_paid_late.account_id = spine.account_id
        and invoices_paid_late.snapshot_date = spine.snapshot_date
    left join invoices_overdue
        on invoices_overdue.account_id = spine.account_id
        and invoices_overdue.snapshot_date = spine.snapshot_date
    left join opportunities_open
        on opportunities_open.account_id = spine.account_id
        and opportunities_open.snapshot_date = spine.snapshot_date
    left join opportunities_won
        on opportunities_won.account_id = spine.account_id
        and opportunities_won.snapshot_date = spine.snapshot_date

)

select * from final
