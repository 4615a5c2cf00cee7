with

source as (

    select * from {{ source('crm', 'opportunities') }}

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

    from source
    where opportunity_id is not null
    {{ dedupe_latest(['trim(opportunity_id)'], 'updated_at') }}

),

final as (

    select * from renamed

)

select * from final
