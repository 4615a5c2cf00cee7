{#- Normalise a free-text enum: trimmed, lower case, spaces and dashes as underscores ('Mid Market' -> 'mid_market'). -#}
{% macro clean_enum(column) -%}
    nullif(regexp_replace(lower(trim({{ column }})), '[\s\-]+', '_', 'g'), '')
{%- endmacro %}
