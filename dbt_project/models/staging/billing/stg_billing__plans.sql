with

source as (

    select * from {{ source('billing', 'plans') }}

),

deduped as (

    {{ dedupe_latest('source', ['trim(plan_id)']) }}

),

renamed as (

    select
        trim(plan_id) as plan_id,
        trim(product_id) as product_id,
        trim(plan_name) as plan_name,
        tier_rank,
        list_price,
        nullif(upper(trim(currency)), '') as currency,
        -- the contract's default: a plan without a pricing model is priced per seat
        coalesce({{ clean_enum('pricing_model') }}, 'per_seat') as pricing_model,
        billing_period_months,
        _loaded_at

    from deduped
    where plan_id is not null

)

select * from renamed
