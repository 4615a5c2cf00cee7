{#-
    The cross-sell candidates of each account at each snapshot date, best first (DECISIONLOG.md,
    "Offers"): the usual companion it lacks (int_account_companions_snapshotted), then the
    products most held by active accounts that it lacks (ties: product_id), each at its entry
    plan at the account's billing period (macros/plan_choice.sql) and priced at list price in
    the reporting currency for `units` units: the core quantity when both that plan and the
    core plan are per seat, else 1. Only candidates with a plan and a value above 0 are ranked;
    the first two are kept (account_offers takes the second when the upsell already offers the
    first). One row per (account_id, snapshot_date, candidate_rank); active accounts with a
    core subscription only.
    Incremental by snapshot date (macros/snapshot_incremental.sql, state in
    intermediate._incremental_builds): a date's candidates come from that date's holdings,
    companions and prices; `dbt build --full-refresh` gives the same rows.
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan(state='table') %}
with

contracts as (

    select * from {{ ref('int_account_contracts_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

holdings as (

    select * from {{ ref('int_account_holdings_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

companions as (

    select * from {{ ref('int_account_companions_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

plans as (

    select * from {{ ref('int_plans_laddered') }}

),

plan_prices as (

    select * from {{ ref('int_plan_prices_converted') }}
    where {{ snapshot_dates_filter(plan) }}

),

core as (

    select
        contracts.account_id,
        contracts.snapshot_date,
        contracts.core_quantity,
        contracts.core_billing_period_months,
        plans.currency as core_currency,
        plans.pricing_model as core_pricing_model
    from contracts
    inner join plans
        on plans.plan_id = contracts.core_plan_id
    where contracts.is_active

),

product_holders as (

    select
        snapshot_date,
        product_id,
        count(distinct account_id) as holders
    from holdings
    group by snapshot_date, product_id

),

lacked_products as (

    -- products held by active accounts that the account lacks; its usual companion first
    select
        core.account_id,
        core.snapshot_date,
        product_holders.product_id,
        case
            when product_holders.product_id = companions.top_companion_product_id then 0 else 1
        end as is_popular_only,
        product_holders.holders
    from core
    inner join product_holders
        on product_holders.snapshot_date = core.snapshot_date
    left join companions
        on companions.account_id = core.account_id
        and companions.snapshot_date = core.snapshot_date
    where
        not exists (
            select 1
            from holdings
            where holdings.snapshot_date = core.snapshot_date
                and holdings.account_id = core.account_id
                and holdings.product_id = product_holders.product_id
        )

),

entry_plans as (

    -- each lacked product's entry plan at the account's billing period
    select
        lacked_products.account_id,
        lacked_products.snapshot_date,
        lacked_products.product_id,
        lacked_products.is_popular_only,
        lacked_products.holders,
        plans.product_name,
        plans.plan_id,
        plans.plan_name,
        case
            when plans.pricing_model = 'per_seat' and core.core_pricing_model = 'per_seat'
            then core.core_quantity
            else 1
        end as units,
        plans.pricing_model,
        row_number() over (
            partition by
                lacked_products.account_id,
                lacked_products.snapshot_date,
                lacked_products.product_id
            order by {{ plan_preference(
                'plans', 'core.core_currency', 'core.core_billing_period_months'
            ) }}
        ) as preference
    from lacked_products
    inner join core
        on core.account_id = lacked_products.account_id
        and core.snapshot_date = lacked_products.snapshot_date
    inner join plans
        on plans.product_id = lacked_products.product_id
        and {{ billing_period_matches(
            'plans.billing_period_months', 'core.core_billing_period_months'
        ) }}

),

priced as (

    select
        entry_plans.account_id,
        entry_plans.snapshot_date,
        entry_plans.product_id,
        entry_plans.product_name,
        entry_plans.plan_id,
        entry_plans.plan_name,
        entry_plans.units,
        entry_plans.is_popular_only,
        entry_plans.holders,
        {{ plan_mrr('entry_plans.pricing_model', 'prices.list_price', 'entry_plans.units') }}
            as offer_mrr
    from entry_plans
    inner join plan_prices as prices
        on prices.plan_id = entry_plans.plan_id
        and prices.snapshot_date = entry_plans.snapshot_date
    where entry_plans.preference = 1

),

ordered as (

    select
        account_id,
        snapshot_date,
        product_id,
        product_name,
        plan_id,
        plan_name,
        cast(units as integer) as units,
        cast(offer_mrr as {{ type_double() }}) as offer_mrr,
        row_number() over (
            partition by account_id, snapshot_date
            order by is_popular_only asc, holders desc, product_id asc
        ) as candidate_rank
    from priced
    where offer_mrr > 0

),

best_two as (

    select * from ordered
    where candidate_rank <= 2

)

select * from best_two
