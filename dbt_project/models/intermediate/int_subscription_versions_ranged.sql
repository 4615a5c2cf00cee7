{#-
    One row per subscription version (a subscription_changes row) with the time range it
    held, [valid_from, valid_to), and its MRR.

    - The first version holds from the subscription's started_at; a later version from its
      effective_at (never before started_at). A version ends where the next one starts or at
      canceled_at (end of service), whichever is first; valid_to is null while it holds.
      Versions that hold for no time (superseded at the same instant, or effective after
      the cancellation) are dropped.
    - MRR spreads the billing period evenly over its months:
      mrr_local = unit_amount * quantity / billing_period_months (an annual plan billed 12,000
      a year is 1,000 MRR every month of the year). No proration of partial months: MRR is a
      rate, valid from the instant the version starts.
    - mrr is mrr_local in the reporting currency at the rates of rate_month, the month of
      valid_from (the booked rate: a version keeps its rate for as long as it holds, so MRR
      never moves with exchange rates; macros/reporting_rate.sql). Fails the build when the
      reporting currency has no rate at all.
    - Amounts are DECIMAL(38,6) so sums reconcile exactly; marts cast to double.
    Not limited to as_of: marts and snapshots cut the history at their own dates.
-#}
{{- assert_reporting_currency_has_rates() }}
with

subscription_changes as (

    select * from {{ ref('stg_billing__subscription_changes') }}

),

subscriptions as (

    select * from {{ ref('stg_billing__subscriptions') }}

),

customers as (

    select * from {{ ref('stg_billing__customers') }}

),

plans as (

    select * from {{ ref('int_plans_laddered') }}

),

products as (

    select * from {{ ref('stg_billing__products') }}

),

ordered as (

    select
        subscription_changes.change_id,
        subscription_changes.subscription_id,
        subscriptions.customer_id,
        customers.account_id,
        subscriptions.product_id,
        subscription_changes.plan_id,
        subscription_changes.quantity,
        subscription_changes.unit_amount,
        subscription_changes.currency,
        subscriptions.billing_period_months,
        subscriptions.term_months,
        subscriptions.started_at,
        subscriptions.canceled_at,
        subscription_changes.effective_at,
        row_number() over (
            partition by subscription_changes.subscription_id
            order by subscription_changes.effective_at, subscription_changes.change_id
        ) as version_number
    from subscription_changes
    inner join subscriptions
        on subscriptions.subscription_id = subscription_changes.subscription_id
    inner join customers
        on customers.customer_id = subscriptions.customer_id

),

ranged as (

    select
        *,
        case
            when version_number = 1 then started_at
            else greatest(effective_at, started_at)
        end as valid_from
    from ordered

),

closed as (

    select
        *,
        nullif(
            least(
                coalesce(
                    lead(valid_from) over (partition by subscription_id order by version_number),
                    {{ end_of_time() }}
                ),
                coalesce(canceled_at, {{ end_of_time() }})
            ),
            {{ end_of_time() }}
        ) as valid_to
    from ranged

),

priced as (

    select
        closed.change_id,
        closed.subscription_id,
        closed.version_number,
        closed.customer_id,
        closed.account_id,
        closed.product_id,
        products.product_name,
        products.product_family,
        closed.plan_id,
        plans.plan_name,
        plans.tier_rank,
        closed.quantity,
        closed.unit_amount,
        closed.currency,
        closed.billing_period_months,
        closed.term_months,
        closed.started_at,
        closed.canceled_at,
        closed.effective_at,
        closed.valid_from,
        closed.valid_to,
        cast({{ dbt.date_trunc('month', 'closed.valid_from') }} as date) as rate_month,
        cast(
            closed.unit_amount * closed.quantity / closed.billing_period_months as decimal(38, 6)
        ) as mrr_local,
        cast(
            {{ to_reporting_currency(
                'closed.unit_amount * closed.quantity / closed.billing_period_months',
                'closed.currency',
                'closed.valid_from'
            ) }}
            as decimal(38, 6)
        ) as mrr
    from closed
    left join products
        on products.product_id = closed.product_id
    left join plans
        on plans.plan_id = closed.plan_id
    where closed.valid_to is null
        or closed.valid_to > closed.valid_from

)

select * from priced
