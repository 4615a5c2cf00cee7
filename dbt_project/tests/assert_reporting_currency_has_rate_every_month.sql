-- Every subscription version converts to the reporting currency at the rates of the month it
-- took effect (rate_month), so the reporting currency needs a rate for each of those months:
-- a row of billing.exchange_rates, else seeds/fx_rates.csv. Returns the months without one.
-- (A reporting currency in neither fails int_subscription_versions_ranged already, with a
-- message; this catches a currency the monthly table has for some months only.)
with

versions as (

    select * from {{ ref('int_subscription_versions_ranged') }}

),

booked_months as (

    select distinct versions.rate_month
    from versions

)

select
    {{ reporting_currency() }} as reporting_currency,
    booked_months.rate_month
from booked_months
where {{ exchange_rate(reporting_currency(), 'booked_months.rate_month') }} is null
