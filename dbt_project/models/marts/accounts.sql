{#-
    One row per CRM account that exists at as_of (created on or before it), with its state
    at the end of the as_of day. Current values come from the scoring snapshot of
    int_account_contracts_snapshotted so accounts and account_snapshots always agree.
-#}
with

crm_accounts as (

    select * from {{ ref('stg_crm__accounts') }}

),

customers as (

    select * from {{ ref('stg_billing__customers') }}

),

pipeline_dates as (

    select * from {{ ref('int_pipeline_dates_resolved') }}

),

contracts_at_as_of as (

    select contracts.*
    from {{ ref('int_account_contracts_snapshotted') }} as contracts
    inner join pipeline_dates
        on pipeline_dates.as_of_date = contracts.snapshot_date

),

holdings_at_as_of as (

    select holdings.*
    from {{ ref('int_account_holdings_snapshotted') }} as holdings
    inner join pipeline_dates
        on pipeline_dates.as_of_date = holdings.snapshot_date

),

events as (

    select * from {{ ref('int_expansion_events_classified') }}

),

billing_currency as (

    -- an account billed by several customers is reported in its oldest customer's currency
    select
        account_id,
        currency as billing_currency
    from (
        {{ deduplicate('customers', ['account_id'], ['created_at', 'customer_id']) }}
    ) as oldest_customer

),

last_churn as (

    select
        events.account_id,
        max(events.event_at) as churned_at
    from events
    cross join pipeline_dates
    where events.movement_type = 'churn'
        and events.event_at < pipeline_dates.as_of_end_at
    group by events.account_id

),

mrr_in_billing_currency as (

    -- each held version converted from its currency at its own booked rates, so an account
    -- billed in one currency gets exactly the sum of its contracts' current_mrr_local
    select
        holdings_at_as_of.account_id,
        sum(
            cast(
                {{ convert_currency(
                    'holdings_at_as_of.mrr_local',
                    'holdings_at_as_of.currency',
                    'billing_currency.billing_currency',
                    'holdings_at_as_of.rate_month'
                ) }}
                as decimal(38, 6)
            )
        ) as current_mrr_local
    from holdings_at_as_of
    inner join billing_currency
        on billing_currency.account_id = holdings_at_as_of.account_id
    group by holdings_at_as_of.account_id

),

final as (

    select
        crm_accounts.account_id,
        crm_accounts.account_name,
        crm_accounts.segment,
        crm_accounts.industry,
        crm_accounts.country,
        crm_accounts.owner_name,
        billing_currency.billing_currency,
        crm_accounts.created_at,
        cast({{ dbt.datediff(
            'cast(coalesce(contracts_at_as_of.first_subscription_at, crm_accounts.created_at) as date)',
            'contracts_at_as_of.snapshot_date',
            'day'
        ) }} as integer) as tenure_days,
        cast(
            coalesce(mrr_in_billing_currency.current_mrr_local, 0) as {{ type_double() }}
        ) as current_mrr_local,
        cast(contracts_at_as_of.mrr as {{ type_double() }}) as current_mrr,
        {{ reporting_currency() }} as reporting_currency,
        contracts_at_as_of.products_held,
        contracts_at_as_of.core_plan_name,
        contracts_at_as_of.core_tier_rank,
        contracts_at_as_of.core_quantity,
        case
            when contracts_at_as_of.is_active then 'active'
            when contracts_at_as_of.first_subscription_at is not null then 'churned'
            else 'prospect'
        end as lifecycle_status,
        contracts_at_as_of.first_subscription_at,
        case
            when not contracts_at_as_of.is_active then last_churn.churned_at
        end as churned_at
    from crm_accounts
    inner join contracts_at_as_of
        on contracts_at_as_of.account_id = crm_accounts.account_id
    left join billing_currency
        on billing_currency.account_id = crm_accounts.account_id
    left join mrr_in_billing_currency
        on mrr_in_billing_currency.account_id = crm_accounts.account_id
    left join last_churn
        on last_churn.account_id = crm_accounts.account_id

)

select * from final
