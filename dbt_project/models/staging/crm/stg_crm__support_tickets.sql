with

source as (

    select * from {{ source('crm', 'support_tickets') }}

),

deduped as (

    {{ dedupe_latest('source', ['trim(ticket_id)'], 'updated_at') }}

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

    from deduped
    where ticket_id is not null

)

select * from renamed
