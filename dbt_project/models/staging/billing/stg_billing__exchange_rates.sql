{#-
    Monthly exchange rates (optional extract; empty when the business sends none): one row
    per (rate_month, currency), the latest load winning. Amounts convert at these through
    macros/reporting_rate.sql; a month or currency without a row uses seeds/fx_rates.csv.
-#}
with

source as (

    select * from {{ source('billing', 'exchange_rates') }}

),

deduped as (

    {{ dedupe_latest('source', ['rate_month', 'upper(trim(currency))']) }}

),

renamed as (

    select
        cast(rate_month as date) as rate_month,
        upper(trim(currency)) as currency,
        cast(rate_to_usd as {{ type_double() }}) as rate_to_usd,
        _loaded_at

    from deduped
    where rate_month is not null
        and nullif(trim(currency), '') is not null

)

select * from renamed
