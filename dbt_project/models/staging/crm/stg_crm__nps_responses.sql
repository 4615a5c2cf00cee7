with

source as (

    select * from {{ source('crm', 'nps_responses') }}

),

deduped as (

    {{ dedupe_latest('source', ['trim(response_id)']) }}

),

renamed as (

    select
        trim(response_id) as response_id,
        trim(account_id) as account_id,
        nullif(trim(contact_id), '') as contact_id,
        score,
        responded_at,
        _loaded_at

    from deduped
    where response_id is not null

)

select * from renamed
