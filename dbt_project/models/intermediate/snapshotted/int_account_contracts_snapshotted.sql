{#-
    What each account holds at the end of each snapshot date: MRR, products, and its core
    subscription (the held core-family subscription with the highest MRR, then the highest
    tier, then the earliest start) with its plan, seats, limits and next renewal.
    One row per account per snapshot date (spine), nulls/zeros when nothing is held.
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan() %}
{%- set core_renewal_date = next_renewal_date(
    'core_subscription.core_started_at', 'core_subscription.core_term_months', 'spine.snapshot_date'
) %}
with

spine as (

    {{ snapshot_spine(plan) }}

),

holdings as (

    select * from {{ ref('int_account_holdings_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

plans as (

    select * from {{ ref('int_plans_laddered') }}

),

versions as (

    select * from {{ ref('int_subscription_versions_ranged') }}

),

account_totals as (

    select
        snapshot_date,
        account_id,
        sum(mrr_usd) as mrr_usd,
        count(distinct product_id) as products_held
    from holdings
    group by snapshot_date, account_id

),

core_holdings as (

    select
        snapshot_date,
        account_id,
        subscription_id as core_subscription_id,
        product_id as core_product_id,
        plan_id as core_plan_id,
        started_at as core_started_at,
        term_months as core_term_months,
        mrr_usd,
        tier_rank
    from holdings
    where product_family = 'core'

),

core_subscription as (

    {{ deduplicate(
        'core_holdings',
        ['snapshot_date', 'account_id'],
        ['mrr_usd desc', 'tier_rank desc nulls last', 'core_started_at', 'core_subscription_id']
    ) }}

),

core_product_seats as (

    select
        holdings.snapshot_date,
        holdings.account_id,
        sum(holdings.quantity) as seats_purchased,
        max(holdings.tier_rank) as core_tier_rank
    from holdings
    inner join core_subscription
        on core_subscription.snapshot_date = holdings.snapshot_date
        and core_subscription.account_id = holdings.account_id
        and core_subscription.core_product_id = holdings.product_id
    group by holdings.snapshot_date, holdings.account_id

),

first_starts as (

    select
        account_id,
        min(valid_from) as first_subscription_at
    from versions
    group by account_id

),

final as (

    select
        spine.account_id,
        spine.snapshot_date,
        coalesce(account_totals.products_held, 0) > 0 as is_active,
        cast(coalesce(account_totals.mrr_usd, 0) as decimal(38, 6)) as mrr_usd,
        cast(coalesce(account_totals.products_held, 0) as integer) as products_held,
        case
            when first_starts.first_subscription_at < spine.snapshot_end_at
            then first_starts.first_subscription_at
        end as first_subscription_at,
        core_subscription.core_subscription_id,
        core_subscription.core_product_id,
        core_subscription.core_plan_id,
        plans.plan_name as core_plan_name,
        cast(core_product_seats.core_tier_rank as integer) as core_tier_rank,
        plans.is_top_tier,
        plans.next_tier_plan_name,
        cast(core_product_seats.seats_purchased as integer) as seats_purchased,
        plans.storage_limit_gb,
        plans.api_calls_limit,
        {{ core_renewal_date }} as core_renewal_date,
        cast({{ dbt.datediff(
            'spine.snapshot_date', core_renewal_date, 'day'
        ) }} as integer) as days_to_renewal,
        {{ snapshot_build_columns(plan) }}
    from spine
    left join account_totals
        on account_totals.snapshot_date = spine.snapshot_date
        and account_totals.account_id = spine.account_id
    left join core_subscription
        on core_subscription.snapshot_date = spine.snapshot_date
        and core_subscription.account_id = spine.account_id
    left join core_product_seats
        on core_product_seats.snapshot_date = spine.snapshot_date
        and core_product_seats.account_id = spine.account_id
    left join plans
        on plans.plan_id = core_subscription.core_plan_id
    left join first_starts
        on first_starts.account_id = spine.account_id

)

select * from final
