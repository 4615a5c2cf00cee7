{#-
    Daily usage, one row per (account_id, usage_date, metric): the contract's grain, with the
    value of the latest load when a day's metric was exported more than once. Metric names
    are the declared ones (the loader accepts no other; source config.usage_metrics); nothing
    here names a metric.

    Dedupe is one hash aggregate on (account_id, usage_date, metric): latest_value =
    arg_max(value, _loaded_at), no window and no sort. There is no per-day intermediate.
    Unlike the other staging models it does not trim(account_id): the loader writes every
    VARCHAR trimmed (flows/ingest/rules.py), and trimming ~300M keys costs ~25% of the model.

    Incremental (folder config, delete+insert on (account_id, usage_date)): a run recomputes
    only the (account_id, usage_date) days that received a raw row in a load after the latest
    `_loaded_at` already in this table, each from *all* its raw rows, whatever load they came
    in; every metric of such a day is rewritten, so a late correction of one metric of an
    existing day replaces that metric and keeps the others. A full refresh gives the same
    rows (tests/dbt/test_incremental.py).
    Raw is append-only; if it was emptied and reloaded (loader full refresh: every raw row
    is newer than this table), the pre-hook empties this table first so days that are no
    longer in raw do not survive. Any other deletion in raw needs `dbt build --full-refresh`.

    The table's latest `_loaded_at` and the first day with newer raw rows are looked up when
    dbt compiles the model and written into the SQL as literals: with constants DuckDB skips
    the raw row groups of older days (raw arrives roughly in date order) instead of scanning
    all of raw. `_built_at` is when dbt wrote the row (the build's start); the data tests of
    this model check the days of the latest build only (`latest_build_from:` in
    _usage__models.yml, macros/get_where_subquery.sql). The pre-hook adds `_built_at` to a
    table built before it existed.
-#}
{{
    config(
        unique_key=['account_id', 'usage_date'],
        pre_hook=[
            "{% if is_incremental() %}alter table {{ this }} add column if not exists _built_at timestamp{% endif %}",
            "{% if is_incremental() %}delete from {{ this }} where (select min(_loaded_at) from {{ source('usage', 'usage_daily') }}) > (select max(_loaded_at) from {{ this }}){% endif %}"
        ]
    )
}}
{%- set loaded_until = none -%}
{%- set first_changed_day = none -%}
{%- if execute and is_incremental() -%}
    {%- set loaded_until = run_query('select max(_loaded_at) from ' ~ this).columns[0].values()[0] -%}
    {%- set loaded_until = '1900-01-01' if loaded_until is none else loaded_until | string -%}
    {%- set first_changed_day = run_query(
        "select min(usage_date) from " ~ source('usage', 'usage_daily')
        ~ " where _loaded_at > cast('" ~ loaded_until ~ "' as timestamp)"
    ).columns[0].values()[0] -%}
{%- endif %}

with

source as (

    select * from {{ source('usage', 'usage_daily') }}

),

{% if is_incremental() %}

changed_days as (

    select distinct
        source.account_id,
        source.usage_date
    from source
    where source._loaded_at > cast('{{ loaded_until }}' as timestamp)
        and source.account_id is not null
        and source.usage_date is not null
        and source.value is not null

),

to_aggregate as (

    -- every raw row of a changed day, from every load
    select source.*
    from source
    inner join changed_days
        on changed_days.account_id = source.account_id
        and changed_days.usage_date = source.usage_date
    -- the first changed day as a constant, so the scan skips row groups of older days
    {%- if first_changed_day is none %}
    where false
    {%- else %}
    where source.usage_date >= cast('{{ first_changed_day }}' as date)
    {%- endif %}

),

{% else %}

to_aggregate as (

    select * from source

),

{% endif %}

deduped as (

    select
        account_id,
        usage_date,
        metric,
        -- `value` is the contract's column name
        {{ latest_value('value', ['_loaded_at']) }} as value,  -- noqa: RF04
        max(_loaded_at) as _loaded_at,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp) as _built_at

    from to_aggregate
    where account_id is not null
        and usage_date is not null
        and metric is not null
        and value is not null
    group by account_id, usage_date, metric

)

select * from deduped
