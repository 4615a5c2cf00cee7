with

source as (

    select * from {{ source('billing', 'customers') }}

),

renamed as (

    select
        trim(customer_id) as customer_id,
        trim(crm_account_id) as account_id,
        nullif(upper(trim(currency)), '') as currency,
        created_at,
        updated_at,
        _loaded_at

    from source
    where customer_id is not null
    {{ dedupe_latest(['trim(customer_id)'], 'updated_at') }}

),

final as (

    select * from renamed

)

select * from final
