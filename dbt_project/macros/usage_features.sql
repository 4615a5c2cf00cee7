{#-
    The usage features of marts.account_features, one column `<metric>__<stat>` per declared
    metric and stat of its family. The metrics are data (config/business.yml, written by the
    loader to raw.config__usage_metrics), read when dbt compiles the model; no metric is named
    in this project.
-#}


{#-
    The stats of a metric's feature family, by its aggregation, as a list of
    (stat, account_metric_snapshots column) pairs, plus `utilization` when the metric has a
    limit_period. THE ONE PLACE this list lives (Python discovers the columns by name:
    `<declared metric>__<stat>`).
-#}
{% macro usage_feature_stats(aggregation, limit_period=none) -%}
    {%- set by_aggregation = {
        'sum': [
            ('7d', 'value_7d'), ('30d', 'value_30d'), ('90d', 'value_90d'),
            ('trend_28d', 'trend_28d'), ('active_days_30d', 'active_days_30d'),
            ('days_since_use', 'days_since_use'),
        ],
        'distinct': [
            ('7d', 'value_7d'), ('30d', 'value_30d'), ('90d', 'value_90d'),
            ('trend_28d', 'trend_28d'), ('days_since_use', 'days_since_use'),
        ],
        'level': [
            ('latest', 'latest_value'), ('30d', 'value_30d'), ('trend_28d', 'trend_28d'),
        ],
    } -%}
    {%- if aggregation not in by_aggregation -%}
        {{ exceptions.raise_compiler_error(
            "usage_feature_stats: unknown aggregation '" ~ aggregation ~ "' (expected sum, level or distinct)"
        ) }}
    {%- endif -%}
    {%- set stats = by_aggregation[aggregation] | list -%}
    {%- if limit_period is not none -%}
        {%- do stats.append(('utilization', 'utilization')) -%}
    {%- endif -%}
    {{ return(stats) }}
{%- endmacro %}


{#-
    The declared usage metrics as a list of dicts (metric, aggregation, limit_period), in
    name order, read from source config.usage_metrics when dbt executes. Empty while dbt
    only parses, and when the table is not there yet (a compile on an empty warehouse): the
    model then has no usage columns. Read from the source, not the staging view, so the
    columns follow the declaration the loader wrote even when the view was not built yet.
-#}
{% macro declared_usage_metrics() -%}
    {%- set relation = source('config', 'usage_metrics') -%}
    {%- if not execute or load_relation(relation) is none -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set rows = run_query(
        'select metric, aggregation, limit_period from ' ~ relation ~ ' order by metric'
    ).rows -%}
    {%- set metrics = [] -%}
    {%- for row in rows -%}
        {%- do metrics.append({'metric': row[0], 'aggregation': row[1], 'limit_period': row[2]}) -%}
    {%- endfor -%}
    {{ return(metrics) }}
{%- endmacro %}


{#- `text` as a SQL string literal (single quotes doubled). -#}
{% macro sql_string(text) -%}
    '{{ text | replace("'", "''") }}'
{%- endmacro %}


{#- `name` as a quoted SQL identifier (double quotes doubled), e.g. a `<metric>__<stat>` column. -#}
{% macro quoted_identifier(name) -%}
    "{{ name | replace('"', '""') }}"
{%- endmacro %}
