{#-
    Column names in the SQL dbt writes for incremental models, quoted with any double quote
    inside doubled: a declared usage metric may be named `it's "odd"`, and account_features
    (incremental) has a column per metric. dbt's own get_quoted_csv (the column list of
    delete+insert) and dbt-duckdb's add/drop column (on_schema_change) wrap a name in double
    quotes without doubling the ones inside. These take precedence over theirs.
-#}
{% macro get_quoted_csv(column_names) -%}
    {%- set quoted = [] -%}
    {%- for col in column_names -%}
        {%- do quoted.append(quoted_identifier(col)) -%}
    {%- endfor -%}
    {{ return(quoted | join(', ')) }}
{%- endmacro %}


{% macro duckdb__alter_relation_add_remove_columns(relation, add_columns, remove_columns) -%}
    {%- for column in add_columns or [] -%}
        {%- do run_query(
            'alter ' ~ relation.type ~ ' ' ~ relation ~ ' add column '
            ~ quoted_identifier(column.name) ~ ' ' ~ column.data_type
        ) -%}
    {%- endfor -%}
    {%- for column in remove_columns or [] -%}
        {%- do run_query(
            'alter ' ~ relation.type ~ ' ' ~ relation ~ ' drop column ' ~ quoted_identifier(column.name)
        ) -%}
    {%- endfor -%}
{%- endmacro %}
