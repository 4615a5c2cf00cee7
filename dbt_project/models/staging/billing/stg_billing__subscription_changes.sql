with

source as (

    select * from {{ source('billing', 'subscription_changes') }}

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

    from source
    where change_id is not null
    {{ dedupe_latest(['trim(change_id)']) }}

),

final as (

    select * from renamed

)

select * from final
