with

source as (

    select * from {{ source('crm', 'contacts') }}

),

deduped as (

    {{ dedupe_latest('source', ['trim(contact_id)'], 'updated_at') }}

),

renamed as (

    select
        trim(contact_id) as contact_id,
        trim(account_id) as account_id,
        -- personal data: names dropped, e-mail kept only as a sha256 hash
        case
            when nullif(trim(email), '') is not null
            then {{ hash_sha256('lower(trim(email))') }}
        end as email_hash,
        nullif(trim(title), '') as title,
        coalesce(is_primary, false) as is_primary,
        created_at,
        updated_at,
        _loaded_at

    from deduped
    where contact_id is not null

)

select * from renamed
