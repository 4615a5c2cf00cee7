with

source as (

    select * from {{ source('billing', 'subscriptions') }}

),

renamed as (

    select
        trim(subscription_id) as subscription_id,
        trim(customer_id) as customer_id,
        trim(product_id) as product_id,
        billing_period_months,
        term_months,
        started_at,
        canceled_at,
        updated_at,
        _loaded_at

    from source
    where subscription_id is not null
    {{ dedupe_latest(['trim(subscription_id)'], 'updated_at') }}

),

final as (

    select * from renamed

)

select * from final
