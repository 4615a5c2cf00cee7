{#-
    Currency conversion (DECISIONLOG.md, "FX"). Every amount of the marts is in the reporting
    currency (var reporting_currency; each mart with amounts has a reporting_currency column
    beside them), converted at the rates of the month the amount was booked in:

        amount in currency c, booked in month m  ->  amount * rate(c, m) / rate(reporting, m)

    rate(c, m) is `exchange_rate(c, m)`: rate_to_usd of c for month m in billing.exchange_rates
    (stg_billing__exchange_rates), else the static rate of seeds/fx_rates.csv. USD is only the
    pivot, so any currency with rates can be the reporting one.

    `exchange_rate` looks the rate up with correlated scalar subqueries: pass qualified column
    names (`versions.currency`, not `currency`), or the subquery reads its own table's column.
-#}


{#- rate(c, m): US dollars per unit of `currency` in the month of `at` (SQL expressions; `at`
    a date or timestamp); null when neither the monthly table nor the seed has the currency. -#}
{% macro exchange_rate(currency, at) -%}
    coalesce(
        (
            select dated_rates.rate_to_usd
            from {{ ref('stg_billing__exchange_rates') }} as dated_rates
            where dated_rates.currency = {{ currency }}
                and dated_rates.rate_month = cast({{ dbt.date_trunc('month', at) }} as date)
        ),
        (
            select static_rates.rate_to_usd
            from {{ ref('fx_rates') }} as static_rates
            where static_rates.currency = {{ currency }}
        )
    )
{%- endmacro %}


{#- `amount` in `currency` converted to the reporting currency at the rates of the month of
    `at` (the month it was booked in). -#}
{% macro to_reporting_currency(amount, currency, at) -%}
    {{ convert_currency(amount, currency, reporting_currency(), at) }}
{%- endmacro %}


{#- `amount` converted from one currency to another at the rates of the month of `at`. -#}
{% macro convert_currency(amount, from_currency, to_currency, at) -%}
    {{ amount }} * {{ exchange_rate(from_currency, at) }} / {{ exchange_rate(to_currency, at) }}
{%- endmacro %}


{#- The reporting currency (var reporting_currency, an ISO 4217 code) as a varchar literal:
    the reporting_currency column of the marts, and the target of to_reporting_currency. -#}
{% macro reporting_currency() -%}
    {%- set code = var('reporting_currency') | string | trim | upper -%}
    {%- if not modules.re.match('^[A-Z]{3}$', code) -%}
        {{ exceptions.raise_compiler_error(
            "var reporting_currency must be an ISO 4217 currency code (three letters, e.g. USD, "
            ~ "JPY), not '" ~ var('reporting_currency') ~ "' (set by EXPANSION_REPORTING_CURRENCY "
            ~ "in the pipeline)"
        ) }}
    {%- endif -%}
    cast('{{ code }}' as {{ dbt.type_string() }})
{%- endmacro %}


{#- Fails the model that calls it (int_subscription_versions_ranged, the first conversion)
    when the reporting currency has no rate at all: neither in seeds/fx_rates.csv nor in
    billing.exchange_rates. Months without a rate of a currency that has some are caught by
    tests/assert_reporting_currency_has_rate_every_month.sql. -#}
{% macro assert_reporting_currency_has_rates() -%}
    {%- set dated = ref('stg_billing__exchange_rates') -%}
    {%- set static = ref('fx_rates') -%}
    {%- if not execute or model.resource_type == 'unit_test' -%}
        {{ return('') }}
    {%- endif -%}
    {#- not built yet: a compile on an empty warehouse (a build builds them first) -#}
    {%- if load_relation(dated) is none or load_relation(static) is none -%}
        {{ return('') }}
    {%- endif -%}
    {%- set code = var('reporting_currency') | string | trim | upper -%}
    {%- set count_sql -%}
        select
            (select count(*) from {{ static }} where currency = {{ reporting_currency() }}),
            (select count(*) from {{ dated }} where currency = {{ reporting_currency() }})
    {%- endset -%}
    {%- set counts = run_query(count_sql).rows[0] -%}
    {%- if counts[0] == 0 and counts[1] == 0 -%}
        {{ exceptions.raise_compiler_error(
            "reporting currency '" ~ code ~ "' (var reporting_currency, set by "
            ~ "EXPANSION_REPORTING_CURRENCY) has no exchange rate: it is neither in "
            ~ "dbt_project/seeds/fx_rates.csv (a static rate_to_usd per currency) nor in the "
            ~ "billing.exchange_rates extract (monthly rates, raw.billing__exchange_rates). "
            ~ "Add its rate to either, or report in a currency that has one."
        ) }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}
