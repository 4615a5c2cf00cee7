{#-
    Change index of the CRM tables the snapshot models read: one row per raw row (every
    loaded version of every record, not only the latest), with
      table_name         the raw table (accounts, support_tickets, ...)
      record_id          the record's key, as its staging model trims it
      affects_from_date  the first snapshot date this version of the record can change: the
                         date of its earliest timestamp (a feature counts an event on a
                         snapshot date d only when it happened before the end of d)
      _loaded_at         when this version was loaded

    The incremental snapshot models (macros/snapshot_incremental.sql) take the records that
    got a version loaded since their last build and recompute every snapshot date on or
    after the earliest affects_from_date among *all* versions of those records (the old
    version counted where the new one may not). A version without any timestamp affects
    every date (1900-01-01).
-#}
with

accounts as (

    select
        'accounts' as table_name,
        trim(account_id) as record_id,
        cast(created_at as date) as affects_from_date,
        _loaded_at
    from {{ source('crm', 'accounts') }}

),

support_tickets as (

    select
        'support_tickets' as table_name,
        trim(ticket_id) as record_id,
        cast(least(opened_at, closed_at) as date) as affects_from_date,
        _loaded_at
    from {{ source('crm', 'support_tickets') }}

),

nps_responses as (

    select
        'nps_responses' as table_name,
        trim(response_id) as record_id,
        cast(responded_at as date) as affects_from_date,
        _loaded_at
    from {{ source('crm', 'nps_responses') }}

),

activities as (

    select
        'activities' as table_name,
        trim(activity_id) as record_id,
        cast(occurred_at as date) as affects_from_date,
        _loaded_at
    from {{ source('crm', 'activities') }}

),

opportunities as (

    select
        'opportunities' as table_name,
        trim(opportunity_id) as record_id,
        -- a closed opportunity without a close date counts as closed at its last update
        cast(least(created_at, closed_at, updated_at) as date) as affects_from_date,
        _loaded_at
    from {{ source('crm', 'opportunities') }}

),

unioned as (

    select * from accounts
    union all
    select * from support_tickets
    union all
    select * from nps_responses
    union all
    select * from activities
    union all
    select * from opportunities

),

final as (

    select
        table_name,
        record_id,
        coalesce(affects_from_date, cast('1900-01-01' as date)) as affects_from_date,
        _loaded_at
    from unioned

)

select * from final
