with

source as (

    select * from {{ source('crm', 'accounts') }}

),

deduped as (

    {{ dedupe_latest('source', ['trim(account_id)'], 'updated_at') }}

),

renamed as (

    select
        trim(account_id) as account_id,
        trim(account_name) as account_name,
        {{ clean_enum('industry') }} as industry,
        nullif(upper(trim(country)), '') as country,
        employee_count,
        {{ clean_enum('segment') }} as segment,
        nullif(trim(owner_name), '') as owner_name,
        -- personal data: the owner's e-mail is kept only as a hash (joins, no address)
        case
            when nullif(trim(owner_email), '') is not null
            then {{ hash_sha256('lower(trim(owner_email))') }}
        end as owner_email_hash,
        created_at,
        updated_at,
        _loaded_at

    from deduped
    where account_id is not null

)

select * from renamed
