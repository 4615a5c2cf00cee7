with

source as (

    select * from {{ source('billing', 'subscriptions') }}

),

deduped as (

    {{ dedupe_latest('source', ['trim(subscription_id)'], 'updated_at') }}

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

    from deduped
    where subscription_id is not null

)

select * from renamed
