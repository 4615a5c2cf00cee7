{#-
    Billing-health features of each account at each snapshot date, from the invoices of its
    billing customers: invoices paid late in the last 365 days, and invoices past due and
    unpaid at the end of the snapshot day. Only what was known then: an invoice paid after the
    snapshot day is still unpaid on it; a void invoice stops counting from the moment it was
    voided (its last update). No invoices gives zeros.

    How: invoices are range-joined to the (few) snapshot dates (macros/snapshot_range_join.sql),
    counted per (account, snapshot) and left-joined to the spine.
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan() %}
with

spine as (

    {{ snapshot_spine(plan) }}

),

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

customers as (

    select * from {{ ref('stg_billing__customers') }}

),

snapshots as (

    select distinct
        snapshot_date,
        snapshot_end_at
    from spine

),

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
        on {{ snapshot_range_join('account_invoices.paid_at', days=365) }}
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
        on {{ snapshot_range_join(
            'account_invoices.due_at', ended_at=['account_invoices.paid_at', 'account_invoices.voided_at']
        ) }}
        and account_invoices.issued_at < snapshots.snapshot_end_at
    group by account_invoices.account_id, snapshots.snapshot_date

),

final as (

    select
        spine.account_id,
        spine.snapshot_date,
        cast(coalesce(invoices_paid_late.invoices_paid_late_365d, 0) as integer)
            as invoices_paid_late_365d,
        cast(coalesce(invoices_overdue.invoices_overdue_open, 0) as integer)
            as invoices_overdue_open,
        {{ snapshot_build_columns(plan) }}
    from spine
    left join invoices_paid_late
        on invoices_paid_late.account_id = spine.account_id
        and invoices_paid_late.snapshot_date = spine.snapshot_date
    left join invoices_overdue
        on invoices_overdue.account_id = spine.account_id
        and invoices_overdue.snapshot_date = spine.snapshot_date

)

select * from final
