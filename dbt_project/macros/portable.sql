{#-
    Adapter-dispatched SQL for what dbt's cross-database macros (dbt.dateadd, dbt.datediff,
    dbt.date_trunc, dbt.last_day, dbt.bool_or, dbt.hash, dbt.type_*, ...) do not cover.
    The project runs on DuckDB (default, `local`/`ci` targets) and PostgreSQL (`postgres`
    target); `default__` is the DuckDB form, `postgres__` the PostgreSQL one. Another adapter
    adds its own `<adapter>__` macro here.
-#}


{#- The 8-byte float type (DuckDB's `double`); dbt.type_float() is a 4-byte float on DuckDB. -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double precision
{%- endmacro %}


{#- Lower-case hex SHA-256 of a string expression (null in, null out). -#}
{% macro hash_sha256(expression) -%}
    {{ return(adapter.dispatch('hash_sha256')(expression)) }}
{%- endmacro %}

{% macro default__hash_sha256(expression) -%}
    sha256({{ expression }})
{%- endmacro %}

{% macro postgres__hash_sha256(expression) -%}
    encode(sha256(convert_to({{ expression }}, 'UTF8')), 'hex')
{%- endmacro %}


{#-
    Aggregate: the value of `value` on the row with the highest `order_by` among the rows
    where `condition` holds and `value` is not null (DuckDB arg_max). `order_by` is a list of
    expressions compared left to right (later ones break ties).
-#}
{% macro latest_value(value, order_by, condition='true') -%}
    {{ return(adapter.dispatch('latest_value')(value, order_by, condition)) }}
{%- endmacro %}

{% macro default__latest_value(value, order_by, condition) -%}
    {%- set by = order_by[0] if order_by | length == 1 else '(' ~ (order_by | join(', ')) ~ ')' -%}
    arg_max({{ value }}, {{ by }})
    {%- if condition != 'true' %} filter (where {{ condition }}){% endif -%}
{%- endmacro %}

{% macro postgres__latest_value(value, order_by, condition) -%}
    (array_agg({{ value }} order by {% for o in order_by %}{{ o }} desc nulls last{{ ', ' if not loop.last }}{% endfor %})
        filter (where ({{ condition }}) and {{ value }} is not null))[1]
{%- endmacro %}


{#-
    A table of integers `lower` .. `upper` (both included) named `alias` with one column
    `column`, for a FROM clause: `cross join {{ integer_series(0, 89, 'days_back', 'n') }}`.
    The bounds may be expressions of earlier FROM items when preceded by `lateral`.
-#}
{% macro integer_series(lower, upper, alias, column) -%}
    {{ return(adapter.dispatch('integer_series')(lower, upper, alias, column)) }}
{%- endmacro %}

{% macro default__integer_series(lower, upper, alias, column) -%}
    generate_series(cast({{ lower }} as integer), cast({{ upper }} as integer)) as {{ alias }}({{ column }})
{%- endmacro %}


{#-
    ASOF join as a whole select: every row of `left` with the columns `right_columns` of the
    latest row of `right` that has the same `by` columns and `right_at` strictly before the
    left row's `left_at` (nulls when there is none). `left_at` / `right_at` are column names.
    DuckDB: a native ASOF LEFT JOIN (linear merge). PostgreSQL has none: a range join on the
    `by` columns keeps the latest match per left row with DISTINCT ON, so there the left rows
    must be unique on (`by`, `left_at`) and the cost grows with left x right rows per key.
-#}
{% macro asof_join(left, right, by, left_at, right_at, right_columns) -%}
    {{ return(adapter.dispatch('asof_join')(left, right, by, left_at, right_at, right_columns)) }}
{%- endmacro %}

{% macro default__asof_join(left, right, by, left_at, right_at, right_columns) -%}
    select
        asof_left.*
        {%- for column in right_columns %},
        asof_right.{{ column }}
        {%- endfor %}
    from {{ left }} as asof_left
    asof left join {{ right }} as asof_right
        on {% for key in by %}asof_right.{{ key }} = asof_left.{{ key }} and {% endfor -%}
        asof_left.{{ left_at }} > asof_right.{{ right_at }}
{%- endmacro %}

{% macro postgres__asof_join(left, right, by, left_at, right_at, right_columns) -%}
    select distinct on ({% for key in by %}asof_left.{{ key }}, {% endfor %}asof_left.{{ left_at }})
        asof_left.*
        {%- for column in right_columns %},
        asof_right.{{ column }}
        {%- endfor %}
    from {{ left }} as asof_left
    left join {{ right }} as asof_right
        on {% for key in by %}asof_right.{{ key }} = asof_left.{{ key }} and {% endfor -%}
        asof_left.{{ left_at }} > asof_right.{{ right_at }}
    order by {% for key in by %}asof_left.{{ key }}, {% endfor %}asof_left.{{ left_at }}, asof_right.{{ right_at }} desc nulls last
{%- endmacro %}



{#-
    A timestamp after every real one, for "still open" comparisons:
    `coalesce(closed_at, {{ end_of_time() }}) >= snapshot_end_at` keeps an inequality join.
-#}
{% macro end_of_time() -%}
    {{ return(adapter.dispatch('end_of_time')()) }}
{%- endmacro %}

{% macro default__end_of_time() -%}
    cast('infinity' as timestamp)
{%- endmacro %}
