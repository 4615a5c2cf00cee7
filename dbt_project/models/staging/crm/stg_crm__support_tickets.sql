with

source as (

    select * from {{ source('crm', 'support_tickets') }}

),

renamed as (

    select
        trim(ticket_id) as ticket_id,
        trim(account_id) as account_id,
        {{ clean_enum('priority') }} as priority,
        nullif(trim(category), '') as category,
        opened_at,
        closed_at,
        updated_at,
        _loaded_at

    from source
    where ticket_id is not null
    {{ dedupe_latest(['trim(ticket_id)'], 'updated_at') }}

),

final as (

    select * from renamed

)

select * from final
