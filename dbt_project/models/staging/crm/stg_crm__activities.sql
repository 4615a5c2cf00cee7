{#-
    CRM activities, one row per activity_id: the latest raw version of each (dedupe_latest).

    Incremental (delete+insert on activity_id): activities arrive every day and the table
    grows with the history (2.7M rows at 100k accounts: a full dedupe took 3.4 s of every
    build with a CRM day, at the head of the snapshot models' chain). A build takes the
    activity_ids that got a raw row loaded after the latest `_loaded_at` in this table and
    dedupes each of them again from *all* its raw rows, whatever load they came in, so the
    result is a full build's. Raw is append-only; if it was emptied and reloaded (loader full
    refresh: every raw row is newer than this table), the pre-hook empties this table first,
    so activities no longer in raw do not survive. Any other deletion in raw needs
    `dbt build --full-refresh`.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='activity_id',
        on_schema_change='fail',
        pre_hook="{% if is_incremental() %}delete from {{ this }} where (select min(_loaded_at) from {{ source('crm', 'activities') }}) > (select max(_loaded_at) from {{ this }}){% endif %}"
    )
}}

with

source as (

    select * from {{ source('crm', 'activities') }}

),

{% if is_incremental() %}

changed_activities as (

    select distinct trim(source.activity_id) as activity_id
    from source
    -- after the pre-hook emptied the table (raw reloaded), every activity
    where source._loaded_at > coalesce(
        (select max(built._loaded_at) from {{ this }} as built),
        cast('1900-01-01' as timestamp)
    )

),

versions as (

    select source.*
    from source
    inner join changed_activities
        on trim(source.activity_id) = changed_activities.activity_id

),

{% else %}

versions as (

    select * from source

),

{% endif %}

deduped as (

    {{ dedupe_latest('versions', ['trim(activity_id)']) }}

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
