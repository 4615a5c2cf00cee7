{#-
    Each plan with its price and pricing model, and its place on its product's tier ladder:
    whether it is the top tier and which plan is one tier up (the smallest tier_rank above it;
    among several plans at that rank, the lowest list price, then the lowest plan_id). Plan
    limits are per metric: stg_billing__plan_limits, int_account_limits_snapshotted.
-#}
with

plans as (

    select * from {{ ref('stg_billing__plans') }}

),

products as (

    select * from {{ ref('stg_billing__products') }}

),

higher_tiers as (

    select
        plans.plan_id,
        higher.plan_id as next_tier_plan_id,
        higher.plan_name as next_tier_plan_name,
        higher.tier_rank as next_tier_rank,
        row_number() over (
            partition by plans.plan_id
            order by higher.tier_rank, higher.list_price nulls last, higher.plan_id
        ) as closeness
    from plans
    inner join plans as higher
        on higher.product_id = plans.product_id
        and higher.tier_rank > plans.tier_rank

),

next_tier as (

    select
        plan_id,
        next_tier_plan_id,
        next_tier_plan_name,
        next_tier_rank
    from higher_tiers
    where closeness = 1

),

final as (

    select
        plans.plan_id,
        plans.product_id,
        products.product_name,
        products.product_family,
        plans.plan_name,
        plans.tier_rank,
        plans.list_price,
        plans.currency,
        plans.pricing_model,
        plans.billing_period_months,
        plans.tier_rank = max(plans.tier_rank) over (partition by plans.product_id) as is_top_tier,
        next_tier.next_tier_plan_id,
        next_tier.next_tier_plan_name,
        next_tier.next_tier_rank
    from plans
    left join products
        on products.product_id = plans.product_id
    left join next_tier
        on next_tier.plan_id = plans.plan_id

)

select * from final
