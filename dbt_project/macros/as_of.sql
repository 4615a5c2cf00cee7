{#-
    The `as_of` var as a SQL date literal, or null when it is not set.
    Models do not call this directly: they read `as_of_date` from
    `int_pipeline_dates_resolved`, which falls back to the latest usage_date when the var is
    null.
-#}
{% macro as_of_literal() -%}
    {%- set as_of = var('as_of', none) -%}
    {%- if as_of is none or (as_of | string | trim | lower) in ('', 'none', 'null') -%}
        cast(null as date)
    {%- else -%}
        cast('{{ as_of | string | trim }}' as date)
    {%- endif -%}
{%- endmacro %}
