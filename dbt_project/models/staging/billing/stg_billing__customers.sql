with

source as (

    select * from {{ source('billing', 'customers') }}

),

deduped as (

    {{ dedupe_latest('source', ['trim(customer_id)'], 'updated_at') }}

),

renamed as (

    select
        trim(customer_id) as customer_id,
        trim(crm_account_id) as account_id,
        nullif(upper(trim(currency)), '') as currency,
        created_at,
        updated_at,
        _loaded_at

    from deduped
    where customer_id is not null

)

select * from renamed
