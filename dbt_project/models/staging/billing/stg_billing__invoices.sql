with

source as (

    select * from {{ source('billing', 'invoices') }}

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

    from source
    where invoice_id is not null
    {{ dedupe_latest(['trim(invoice_id)'], 'updated_at') }}

),

final as (

    select * from renamed

)

select * from final
