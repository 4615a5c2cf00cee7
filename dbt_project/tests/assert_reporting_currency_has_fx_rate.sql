-- The reporting_currency var must have a rate in seeds/fx_rates.csv, or every *_usd amount
-- is empty.
select '{{ var("reporting_currency") }}' as reporting_currency
where
    not exists (
        {{ reporting_rate(ref('fx_rates')) }}
    )
