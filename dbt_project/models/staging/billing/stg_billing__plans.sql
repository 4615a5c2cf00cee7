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
        list_price_usd,
        storage_limit_gb,
        api_calls_limit,
        _loaded_at

    from deduped
    where plan_id is not null

)

select * from renamed
