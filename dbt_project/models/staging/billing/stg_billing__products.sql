with

source as (

    select * from {{ source('billing', 'products') }}

),

deduped as (

    {{ dedupe_latest('source', ['trim(product_id)']) }}

),

renamed as (

    select
        trim(product_id) as product_id,
        trim(product_name) as product_name,
        {{ clean_enum('product_family') }} as product_family,
        _loaded_at

    from deduped
    where product_id is not null

)

select * from renamed
