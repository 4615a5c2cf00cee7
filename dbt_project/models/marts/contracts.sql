{#-
    One row per subscription started on or before as_of, for accounts in `accounts`, with
    the version that holds at the end of the as_of day (or its last version if it ended
    earlier). A cancellation dated after as_of is not known at as_of: such a subscription
    is active with canceled_at null, so an old as_of shows what was true then.
-#}
with

subscriptions as (

    select * from {{ ref('stg_billing__subscriptions') }}

),

versions as (

    select * from {{ ref('int_subscription_versions_ranged') }}

),

products as (

    select * from {{ ref('stg_billing__products') }}

),

customers as (

    select * from {{ ref('stg_billing__customers') }}

),

accounts as (

    select * from {{ ref('accounts') }}

),

pipeline_dates as (

    select * from {{ ref('int_pipeline_dates_resolved') }}

),

known_subscriptions as (

    select
        subscriptions.*,
        customers.account_id,
        case
            when subscriptions.canceled_at < pipeline_dates.as_of_end_at
            then subscriptions.canceled_at
        end as known_canceled_at,
        pipeline_dates.as_of_date,
        pipeline_dates.as_of_end_at
    from subscriptions
    inner join customers
        on customers.customer_id = subscriptions.customer_id
    cross join pipeline_dates
    where subscriptions.started_at < pipeline_dates.as_of_end_at

),

known_versions as (

    select versions.*
    from versions
    cross join pipeline_dates
    where versions.valid_from < pipeline_dates.as_of_end_at

),

version_at_as_of as (

    {{ deduplicate('known_versions', ['subscription_id'], ['valid_from desc']) }}

),

final as (

    select
        known_subscriptions.subscription_id,
        known_subscriptions.account_id,
        known_subscriptions.product_id,
        products.product_name,
        version_at_as_of.plan_name,
        version_at_as_of.tier_rank,
        version_at_as_of.quantity,
        cast(version_at_as_of.unit_amount as {{ type_double() }}) as unit_amount,
        version_at_as_of.currency,
        known_subscriptions.billing_period_months,
        known_subscriptions.term_months,
        known_subscriptions.started_at,
        known_subscriptions.known_canceled_at as canceled_at,
        case
            when known_subscriptions.known_canceled_at is null then
                {{ next_renewal_date(
                    'known_subscriptions.started_at',
                    'known_subscriptions.term_months',
                    'known_subscriptions.as_of_date'
                ) }}
        end as renewal_date,
        case
            when known_subscriptions.known_canceled_at is null then 'active' else 'canceled'
        end as status,
        case
            when known_subscriptions.known_canceled_at is null
            then cast(coalesce(version_at_as_of.mrr_local, 0) as {{ type_double() }})
            else 0
        end as current_mrr_local,
        case
            when known_subscriptions.known_canceled_at is null
            then cast(coalesce(version_at_as_of.mrr, 0) as {{ type_double() }})
            else 0
        end as current_mrr,
        {{ reporting_currency() }} as reporting_currency
    from known_subscriptions
    inner join accounts
        on accounts.account_id = known_subscriptions.account_id
    left join products
        on products.product_id = known_subscriptions.product_id
    left join version_at_as_of
        on version_at_as_of.subscription_id = known_subscriptions.subscription_id

)

select * from final
