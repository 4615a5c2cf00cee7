{#-
    One row per account per calendar month (month_start) in which the account had MRR or
    a movement, from its first subscription month to the as_of month, in the reporting
    currency. The as_of month is partial: it closes at the end of the as_of day.
    Every row reconciles:
        closing = opening + new + upsell + cross_sell + reactivation + price_change
                  - contraction - churn
    (expansion = upsell + cross_sell; price_change is signed, the other movements are
    positive amounts). MRR of annual and other multi-month plans is already spread per month
    in int_subscription_versions_ranged.
-#}
with

events as (

    select * from {{ ref('int_expansion_events_classified') }}

),

accounts as (

    select * from {{ ref('accounts') }}

),

pipeline_dates as (

    select * from {{ ref('int_pipeline_dates_resolved') }}

),

known_events as (

    select events.*
    from events
    cross join pipeline_dates
    where events.event_at < pipeline_dates.as_of_end_at

),

monthly as (

    select
        account_id,
        cast({{ dbt.date_trunc('month', 'event_at') }} as date) as month_start,
        sum(mrr_change) filter (where movement_type = 'new') as new_mrr,
        sum(mrr_change) filter (where movement_type = 'upsell') as upsell_mrr,
        sum(mrr_change) filter (where movement_type = 'cross_sell') as cross_sell_mrr,
        sum(mrr_change) filter (where movement_type = 'reactivation') as reactivation_mrr,
        -sum(mrr_change) filter (where movement_type = 'contraction') as contraction_mrr,
        -sum(mrr_change) filter (where movement_type = 'churn') as churn_mrr,
        sum(mrr_change) filter (where movement_type = 'price_change') as price_change_mrr,
        sum(mrr_change) as net_change_mrr
    from known_events
    group by account_id, cast({{ dbt.date_trunc('month', 'event_at') }} as date)

),

account_months as (

    select
        first_months.account_id,
        cast({{ dbt.dateadd('month', 'months_after.n', 'first_months.first_month_start') }} as date)
            as month_start
    from (
        select
            account_id,
            min(month_start) as first_month_start
        from monthly
        group by account_id
    ) as first_months
    cross join pipeline_dates
    cross join lateral {{ integer_series(
        0,
        dbt.datediff('first_months.first_month_start', 'pipeline_dates.as_of_date', 'month'),
        'months_after',
        'n'
    ) }}

),

filled as (

    select
        account_months.account_id,
        account_months.month_start,
        coalesce(monthly.new_mrr, 0) as new_mrr,
        coalesce(monthly.upsell_mrr, 0) as upsell_mrr,
        coalesce(monthly.cross_sell_mrr, 0) as cross_sell_mrr,
        coalesce(monthly.reactivation_mrr, 0) as reactivation_mrr,
        coalesce(monthly.contraction_mrr, 0) as contraction_mrr,
        coalesce(monthly.churn_mrr, 0) as churn_mrr,
        coalesce(monthly.price_change_mrr, 0) as price_change_mrr,
        coalesce(monthly.net_change_mrr, 0) as net_change_mrr
    from account_months
    left join monthly
        on monthly.account_id = account_months.account_id
        and monthly.month_start = account_months.month_start

),

balanced as (

    select
        *,
        sum(net_change_mrr) over (
            partition by account_id
            order by month_start
            rows between unbounded preceding and current row
        ) as closing_mrr
    from filled

),

final as (

    select
        balanced.account_id,
        balanced.month_start,
        cast(balanced.closing_mrr - balanced.net_change_mrr as {{ type_double() }})
            as opening_mrr,
        cast(balanced.new_mrr as {{ type_double() }}) as new_mrr,
        cast(balanced.upsell_mrr as {{ type_double() }}) as upsell_mrr,
        cast(balanced.cross_sell_mrr as {{ type_double() }}) as cross_sell_mrr,
        cast(balanced.upsell_mrr + balanced.cross_sell_mrr as {{ type_double() }})
            as expansion_mrr,
        cast(balanced.contraction_mrr as {{ type_double() }}) as contraction_mrr,
        cast(balanced.churn_mrr as {{ type_double() }}) as churn_mrr,
        cast(balanced.reactivation_mrr as {{ type_double() }}) as reactivation_mrr,
        cast(balanced.price_change_mrr as {{ type_double() }}) as price_change_mrr,
        cast(balanced.closing_mrr as {{ type_double() }}) as closing_mrr,
        {{ reporting_currency() }} as reporting_currency
    from balanced
    inner join accounts
        on accounts.account_id = balanced.account_id
    -- months without MRR and without any movement (after a churn, before a return) are left out
    where balanced.closing_mrr != 0
        or balanced.closing_mrr - balanced.net_change_mrr != 0
        or balanced.new_mrr != 0
        or balanced.upsell_mrr != 0
        or balanced.cross_sell_mrr != 0
        or balanced.reactivation_mrr != 0
        or balanced.contraction_mrr != 0
        or balanced.churn_mrr != 0
        or balanced.price_change_mrr != 0

)

select * from final
