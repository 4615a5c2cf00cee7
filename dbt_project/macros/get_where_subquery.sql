{#-
    dbt's `where` config of data tests (the tested relation becomes a filtered subquery), plus
    one form resolved when the test runs, for incremental models:

        config:
          where: "latest_build_from:usage_date"

    tests the rows whose `usage_date` is on or after the first `usage_date` written by the
    latest build of the model (its rows with the highest `_built_at`). A first build or a
    `--full-refresh` writes every row, so every row is tested; a daily run tests the days it
    wrote and every older row of those days (so a duplicate across old and new rows is still
    found), instead of the whole table again. Any other `where` works as in dbt.
-#}
{% macro default__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where and where.startswith('latest_build_from:') -%}
        {%- set column = where.split(':', 1)[1] | trim -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ column }} >= (
                select min({{ column }}) from {{ relation }}
                where _built_at = (select max(_built_at) from {{ relation }})
            )) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- elif where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
