{#-
    Each plan's monthly list price in the reporting currency at each snapshot date, converted
    at the rates of the snapshot's month (macro to_reporting_currency): what offers are worth
    (DECISIONLOG.md, "Offers"). One row per (plan_id, snapshot_date); null when the plan's
    currency has no rate.
-#}
with

plans as (

    select * from {{ ref('stg_billing__plans') }}

),

snapshot_dates as (

    select * from {{ ref('int_snapshot_dates_selected') }}

),

converted as (

    select
        plans.plan_id,
        snapshot_dates.snapshot_date,
        cast(
            {{ to_reporting_currency(
                'plans.list_price', 'plans.currency', 'snapshot_dates.snapshot_date'
            ) }} as {{ type_double() }}
        ) as list_price
    from plans
    cross join snapshot_dates

)

select * from converted
