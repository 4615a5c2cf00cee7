with

source as (

    select * from {{ source('billing', 'products') }}

),

renamed as (

    select
        trim(product_id) as product_id,
        trim(product_name) as product_name,
        {{ clean_enum('product_family') }} as product_family,
        _loaded_at

    from source
    where product_id is not null
    {{ dedupe_latest(['trim(product_id)']) }}

),

final as (

    select * from renamed

)

select * from final
