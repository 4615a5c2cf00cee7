{#-
    Each plan with its price and pricing model, and its place on its product's tier ladder:
    whether it is the top tier (no plan of the product ranks higher) and which plan is one
    tier up at the plan's own billing period (DECISIONLOG.md, "Offers"): a plan of the same
    product with the smallest tier_rank above it that is sold on the same billing period (a
    plan without one is sold on any), preferring the plan's currency, then exactly its period,
    then the lowest list price, then plan_id (macros/plan_choice.sql). A plan sold on any
    period gets its next tier on any period here; account_offers matches the account's own.
    Plan limits are per metric: stg_billing__plan_limits, int_account_limits_snapshotted.
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
            order by {{ plan_preference(
                'higher', 'plans.currency', 'plans.billing_period_months'
            ) }}
        ) as closeness
    from plans
    inner join plans as higher
        on higher.product_id = plans.product_id
        and higher.tier_rank > plans.tier_rank
        and {{ billing_period_matches(
            'higher.billing_period_months', 'plans.billing_period_months'
        ) }}

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
