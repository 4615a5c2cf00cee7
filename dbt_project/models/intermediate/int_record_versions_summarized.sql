{#-
    One row per CRM or billing record: the newest _loaded_at of its versions and the earliest
    affects_from_date of any of them (stg_crm__record_versions, stg_billing__record_versions).

    What an incremental snapshot build's rebuild plan asks of the records (macros/
    snapshot_incremental.sql, snapshot_changed_from): "the earliest affects_from_date of
    any version, old or new, of a record with a version loaded since the last build" is
    `min(first_affects_from_date) where last_loaded_at > <last build>` here, one scan of a
    table of records, instead of a join of every version in each of the ~20 models' plans
    (0.4 s each at 100k accounts).

    Incremental: a build summarizes again, from all their versions, the records with a
    version loaded after the newest one it holds. A record with no new version keeps its row;
    a plan only reads the rows of records loaded after its model's last build, and those are
    always summarized from every version they have now (so an edit of how affects_from_date
    is derived reaches a record when it next changes, and every snapshot model recomputes
    every date after such an edit anyway: its build fingerprint changed).
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['table_name', 'record_id'],
) }}

with

record_versions as (

    select
        table_name,
        record_id,
        _loaded_at,
        affects_from_date
    from {{ ref('stg_crm__record_versions') }}
    union all
    select
        table_name,
        record_id,
        _loaded_at,
        affects_from_date
    from {{ ref('stg_billing__record_versions') }}

),

{% if is_incremental() %}

changed_records as (

    select distinct
        record_versions.table_name,
        record_versions.record_id
    from record_versions
    where record_versions._loaded_at > coalesce(
        (select max(summarized.last_loaded_at) from {{ this }} as summarized),
        cast('1900-01-01' as timestamp)
    )

),

summarized_versions as (

    select record_versions.*
    from record_versions
    inner join changed_records
        on changed_records.table_name = record_versions.table_name
        and changed_records.record_id = record_versions.record_id

)

{% else %}

summarized_versions as (

    select * from record_versions

)

{% endif %}

select
    table_name,
    record_id,
    max(_loaded_at) as last_loaded_at,
    min(affects_from_date) as first_affects_from_date
from summarized_versions
group by table_name, record_id
