with

source as (

    select * from {{ source('crm', 'activities') }}

),

deduped as (

    {{ dedupe_latest('source', ['trim(activity_id)']) }}

),

renamed as (

    select
        trim(activity_id) as activity_id,
        trim(account_id) as account_id,
        {{ clean_enum('activity_type') }} as activity_type,
        occurred_at,
        _loaded_at

    from deduped
    where activity_id is not null

)

select * from renamed
