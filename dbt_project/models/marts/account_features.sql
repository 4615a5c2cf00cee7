{#-
    The feature table Python trains and scores on: every column of account_snapshots, plus
    one column `<metric>__<stat>` per declared usage metric and stat of its family
    (macros/usage_features.sql: usage_feature_stats, the one list of stats), pivoted from
    account_metric_snapshots; e.g. `<metric>__30d` is its value_30d, `<metric>__latest` its
    latest_value, `<metric>__utilization` its utilization. The metrics are read from the
    declaration when dbt compiles the model; with none declared the table is
    account_snapshots. Not contract-enforced: its columns follow the declaration.
    Incremental by snapshot date (macros/snapshot_incremental.sql, state in
    marts._incremental_builds): the declaration is in the build fingerprint, a changed
    column list syncs the table, and the label horizon is in the plan as in
    account_snapshots; `dbt build --full-refresh` gives the same rows.
-#}
-- depends_on: {{ ref('account_metric_snapshots') }}
{#- the usage columns: name, metric, the account_metric_snapshots column -#}
{%- set features = [] %}
{%- for m in declared_usage_metrics() %}
{%- for stat, column in usage_feature_stats(m.aggregation, m.limit_period) %}
{%- do features.append({'name': m.metric ~ '__' ~ stat, 'metric': m.metric, 'column': column}) %}
{%- endfor %}
{%- endfor %}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan(labels=true, state='table') %}
with

snapshots as (

    select * from {{ ref('account_snapshots') }}
    where {{ snapshot_dates_filter(plan) }}

){%- if features %},

metric_snapshots as (

    select * from {{ ref('account_metric_snapshots') }}
    where {{ snapshot_dates_filter(plan) }}

),

pivoted as (

    -- one hash aggregate; CASE, not FILTER: with hundreds of filtered aggregates DuckDB is
    -- ~10x slower (30 metrics x 7 stats on 15M rows: 279 s against 25 s)
    select
        {% for feature in features -%}
        max(case when metric = {{ sql_string(feature.metric) }} then {{ feature.column }} end)
            as {{ quoted_identifier(feature.name) }},
        {% endfor -%}
        account_id,
        snapshot_date
    from metric_snapshots
    group by account_id, snapshot_date

),

widened as (

    -- USING gives the keys once, then the other snapshot columns, then the usage columns,
    -- with no list of columns to write out
    select *  -- noqa: RF02
    from snapshots
    left join pivoted using (account_id, snapshot_date)  -- noqa: ST07

)

select * from widened

{%- else %}

-- no usage metric declared: the snapshot columns only
select * from snapshots

{%- endif %}
