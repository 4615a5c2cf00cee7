{#-
    A share in [0, 1] as an integer score 0-100, halves rounded up (87.5 -> 88) on every
    adapter: the rounding is done on a decimal (PostgreSQL rounds a double half to even).
-#}
{% macro score_0_100(share) -%}
    cast(round(cast(100 * ({{ share }}) as decimal(18, 6))) as integer)
{%- endmacro %}
