with

source as (

    select * from {{ source('billing', 'plan_limits') }}

),

deduped as (

    {{ dedupe_latest('source', ['trim(plan_id)', 'trim(metric)']) }}

),

renamed as (

    select
        trim(plan_id) as plan_id,
        trim(metric) as metric,
        cast(limit_value as {{ type_double() }}) as limit_value,
        -- the contract's default: a limit without per_unit is per subscription
        coalesce(per_unit, false) as is_per_unit,
        -- usage-based plans: price of one unit beyond the limit, in the plan's currency
        overage_price,
        _loaded_at

    from deduped
    where plan_id is not null
        and metric is not null

)

select * from renamed
