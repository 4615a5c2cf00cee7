with

source as (

    select * from {{ source('billing', 'invoices') }}

),

deduped as (

    {{ dedupe_latest('source', ['trim(invoice_id)'], 'updated_at') }}

),

renamed as (

    select
        trim(invoice_id) as invoice_id,
        trim(customer_id) as customer_id,
        nullif(trim(subscription_id), '') as subscription_id,
        issued_at,
        due_at,
        paid_at,
        amount_due,
        nullif(upper(trim(currency)), '') as currency,
        {{ clean_enum('status') }} as status,
        updated_at,
        _loaded_at

    from deduped
    where invoice_id is not null

)

select * from renamed
