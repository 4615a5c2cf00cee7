{#-
    The feature table Python trains and scores on: every column of account_snapshots, plus
    one column `<metric>__<stat>` per declared usage metric and stat of its family
    (macros/usage_features.sql: usage_feature_stats, the one list of stats), pivoted from
    account_metric_snapshots; e.g. `<metric>__30d` is its value_30d, `<metric>__latest` its
    latest_value, `<metric>__utilization` its utilization. The metrics are read from the
    declaration when dbt compiles the model; with none declared it is account_snapshots.
    Not contract-enforced: its columns follow the declaration.
    A view: both its inputs are incremental tables, and a copy of them cost every daily
    build a rewrite of the dates it recomputed (3.3 s of the last step at 100k accounts),
    while its readers read one date (scoring, the drift gate: the same 0.6 s as from a
    table) or, when a model is trained, every date once (8.5 -> 14.5 s at 100k accounts).
    One row per account and snapshot date by construction: account_snapshots is unique on
    them (tested there), and the pivot groups by them.
-#}
-- depends_on: {{ ref('account_metric_snapshots') }}
{#- the usage columns: name, metric, the account_metric_snapshots column -#}
{%- set features = [] %}
{%- for m in declared_usage_metrics() %}
{%- for stat, column in usage_feature_stats(m.aggregation, m.limit_period) %}
{%- do features.append({'name': m.metric ~ '__' ~ stat, 'metric': m.metric, 'column': column}) %}
{%- endfor %}
{%- endfor %}
with

snapshots as (

    select * from {{ ref('account_snapshots') }}

){%- if features %},

metric_snapshots as (

    select * from {{ ref('account_metric_snapshots') }}

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
