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
    Incremental by month (macros/snapshot_incremental.sql, month_rebuild_plan): a build
    recomputes the months from the earliest of the previous and this build's as_of month and
    the first month that CRM or billing records loaded since can change, starting each
    account from the balance of its known events before that month (sums in DECIMAL: exact);
    `dbt build --full-refresh` gives the same rows.
-#}
{#- the months this build recomputes: from plan.from_month (none: all) -#}
{%- set plan = month_rebuild_plan() %}
{%- set from_at = none %}
{%- if plan.from_month is not none %}
    {%- set from_at = "cast('" ~ plan.from_month ~ "' as timestamp)" %}
{%- endif %}
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

carried as (

    -- the closing MRR of each account before the first recomputed month
    select
        account_id,
        sum(mrr_change) as carried_mrr
    from known_events
    {%- if from_at is none %}
    where false
    {%- else %}
    where event_at < {{ from_at }}
    {%- endif %}
    group by account_id

),

first_months as (

    select
        account_id,
        min(cast({{ dbt.date_trunc('month', 'event_at') }} as date)) as first_month_start
    from known_events
    group by account_id

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
    {%- if from_at is not none %}
    where event_at >= {{ from_at }}
    {%- endif %}
    group by account_id, cast({{ dbt.date_trunc('month', 'event_at') }} as date)

),

recomputed_months as (

    -- each account's months to recompute: from its first month, or the plan's
    select
        account_id,
        {%- if plan.from_month is none %}
        first_month_start as recomputed_from
        {%- else %}
        greatest(first_month_start, cast('{{ plan.from_month }}' as date)) as recomputed_from
        {%- endif %}
    from first_months

),

account_months as (

    select
        recomputed_months.account_id,
        cast(
            {{ dbt.dateadd('month', 'months_after.n', 'recomputed_months.recomputed_from') }}
            as date
        ) as month_start
    from recomputed_months
    cross join pipeline_dates
    cross join lateral {{ integer_series(
        0,
        dbt.datediff('recomputed_months.recomputed_from', 'pipeline_dates.as_of_date', 'month'),
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
        filled.*,
        coalesce(carried.carried_mrr, 0) + sum(filled.net_change_mrr) over (
            partition by filled.account_id
            order by filled.month_start
            rows between unbounded preceding and current row
        ) as closing_mrr
    from filled
    left join carried
        on carried.account_id = filled.account_id

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
    where
        {{ month_rebuild_filter(plan, 'balanced.month_start') }}
        and (
            balanced.closing_mrr != 0
            or balanced.closing_mrr - balanced.net_change_mrr != 0
            or balanced.new_mrr != 0
            or balanced.upsell_mrr != 0
            or balanced.cross_sell_mrr != 0
            or balanced.reactivation_mrr != 0
            or balanced.contraction_mrr != 0
            or balanced.churn_mrr != 0
            or balanced.price_change_mrr != 0
        )

)

select * from final
