with

source as (

    select * from {{ source('billing', 'subscription_changes') }}

),

deduped as (

    {{ dedupe_latest('source', ['trim(change_id)']) }}

),

renamed as (

    select
        trim(change_id) as change_id,
        trim(subscription_id) as subscription_id,
        effective_at,
        trim(plan_id) as plan_id,
        quantity,
        unit_amount,
        nullif(upper(trim(currency)), '') as currency,
        _loaded_at

    from deduped
    where change_id is not null

)

select * from renamed
