{#-
    Raw tables are append-only history: the same key can arrive in several loads.
    Keep the latest version of each key: the highest `updated_at` (when the table has one),
    then the latest load (`_loaded_at`), then the latest file name as a final tie-break.
    Returns a whole select over `relation` (a ref, source or CTE name) with its columns
    unchanged: `deduped as ({{ dedupe_latest('source', ['trim(account_id)'], 'updated_at') }})`.
-#}
{% macro dedupe_latest(relation, key_columns, updated_at=none) -%}
    {%- set order_by = [] -%}
    {%- if updated_at is not none -%}{%- do order_by.append(updated_at ~ ' desc nulls last') -%}{%- endif -%}
    {%- do order_by.append('_loaded_at desc nulls last') -%}
    {%- do order_by.append('_source_file desc nulls last') -%}
    {{ deduplicate(relation, key_columns, order_by) }}
{%- endmacro %}


{#-
    One row per `partition_by` combination: the first by `order_by` (lists of SQL expressions).
    The columns of `relation` are returned unchanged (no helper column), so callers can
    `select *` from it. Adapter-dispatched: QUALIFY where the database has it (DuckDB,
    Snowflake, BigQuery, Databricks), DISTINCT ON on PostgreSQL.
-#}
{% macro deduplicate(relation, partition_by, order_by) -%}
    {{ return(adapter.dispatch('deduplicate')(relation, partition_by, order_by)) }}
{%- endmacro %}

{% macro default__deduplicate(relation, partition_by, order_by) -%}
    select *
    from {{ relation }}
    qualify row_number() over (
        partition by {{ partition_by | join(', ') }}
        order by {{ order_by | join(', ') }}
    ) = 1
{%- endmacro %}

{% macro postgres__deduplicate(relation, partition_by, order_by) -%}
    select distinct on ({{ partition_by | join(', ') }}) *
    from {{ relation }}
    order by {{ partition_by | join(', ') }}, {{ order_by | join(', ') }}
{%- endmacro %}
