{{ config(severity='warn') }}
-- A subscription version's plan should belong to the subscription's product: tiers are only
-- compared within a product, so a plan of another product makes upsell/contraction unreliable.
with

versions as (

    select * from {{ ref('int_subscription_versions_ranged') }}

),

plans as (

    select * from {{ ref('stg_billing__plans') }}

)

select
    versions.change_id,
    versions.subscription_id,
    versions.product_id,
    plans.product_id as plan_product_id
from versions
inner join plans
    on plans.plan_id = versions.plan_id
where plans.product_id != versions.product_id
