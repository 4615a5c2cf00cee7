with

source as (

    select * from {{ source('crm', 'activities') }}

),

renamed as (

    select
        trim(activity_id) as activity_id,
        trim(account_id) as account_id,
        {{ clean_enum('activity_type') }} as activity_type,
        occurred_at,
        _loaded_at

    from source
    where activity_id is not null
    {{ dedupe_latest(['trim(activity_id)']) }}

),

final as (

    select * from renamed

)

select * from final
