{#-
    Daily usage, one row per (account_id, usage_date) with the four contract metrics as
    columns (contract grain is one row per metric; see DECISIONLOG.md "usage staging").

    Dedupe and pivot run in one hash aggregate: for each metric the value of the latest load
    wins (arg_max on _loaded_at). At ~300M raw rows this is several times cheaper than
    deduping at metric grain first (4x the groups) and pivoting later, and it never sorts.
    Materialized as a table (folder config) so it runs once per build. Metric names outside
    the contract are caught by the accepted_values test on the source, not silently dropped.
-#}
with

source as (

    select * from {{ source('usage', 'usage_daily') }}

),

deduped_pivoted as (

    select
        trim(account_id) as account_id,
        usage_date,
        arg_max(value, _loaded_at) filter (where metric = 'active_users') as active_users,
        arg_max(value, _loaded_at) filter (where metric = 'api_calls') as api_calls,
        arg_max(value, _loaded_at) filter (where metric = 'storage_gb') as storage_gb,
        arg_max(value, _loaded_at) filter (where metric = 'features_used') as features_used,
        max(_loaded_at) as _loaded_at

    from source
    where account_id is not null
        and usage_date is not null
        and value is not null
    group by all

),

final as (

    select * from deduped_pivoted

)

select * from final
