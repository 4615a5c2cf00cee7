{#-
    The one-row select of the reporting currency's rate (var reporting_currency) from
    `fx_rates` (a relation or CTE with currency, rate_to_usd), as reporting_rate_to_usd.
    An amount in currency c is amount * rate_to_usd(c) / reporting_rate_to_usd in the
    reporting currency: `reporting_rate as ({{ reporting_rate() }})`, then cross join it.
-#}
{% macro reporting_rate(fx_rates='fx_rates') -%}
    select rate_to_usd as reporting_rate_to_usd
    from {{ fx_rates }}
    where currency = '{{ var("reporting_currency") }}'
{%- endmacro %}
