with

source as (

    select * from {{ source('crm', 'opportunities') }}

),

deduped as (

    {{ dedupe_latest('source', ['trim(opportunity_id)'], 'updated_at') }}

),

renamed as (

    select
        trim(opportunity_id) as opportunity_id,
        trim(account_id) as account_id,
        {{ clean_enum('opportunity_type') }} as opportunity_type,
        {{ clean_enum('stage') }} as stage,
        amount,
        nullif(upper(trim(currency)), '') as currency,
        created_at,
        closed_at,
        updated_at,
        _loaded_at

    from deduped
    where opportunity_id is not null

)

select * from renamed
