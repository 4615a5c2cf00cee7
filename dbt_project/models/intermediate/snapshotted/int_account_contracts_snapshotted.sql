{#-
    What each account holds at the end of each snapshot date: MRR, products, and its core
    subscription (the held core-family subscription with the highest MRR, then the highest
    tier, then the earliest start) with its plan, pricing model, quantity, term, billing
    period and next renewal. Limits are per metric: int_account_limits_snapshotted.
    months_to_renewal counts whole months: snapshot_date + n months <= core_renewal_date.
    One row per account per snapshot date (spine), nulls/zeros when nothing is held.
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan() %}
{#- whole months from the snapshot to the renewal: calendar months, less one when
    snapshot_date + that many months is past the renewal -#}
{%- set renewal_date = 'core_renewals.core_renewal_date' %}
{%- set calendar_months = dbt.datediff('spine.snapshot_date', renewal_date, 'month') %}
{%- set calendar_months_later = dbt.dateadd('month', calendar_months, 'spine.snapshot_date') %}
with

spine as (

    {{ snapshot_spine(plan) }}

),

holdings as (

    select * from {{ ref('int_account_holdings_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

plans as (

    select * from {{ ref('int_plans_laddered') }}

),

versions as (

    select * from {{ ref('int_subscription_versions_ranged') }}

),

account_totals as (

    select
        snapshot_date,
        account_id,
        sum(mrr) as mrr,
        count(distinct product_id) as products_held
    from holdings
    group by snapshot_date, account_id

),

core_holdings as (

    select
        snapshot_date,
        account_id,
        subscription_id as core_subscription_id,
        product_id as core_product_id,
        plan_id as core_plan_id,
        started_at as core_started_at,
        term_months as core_term_months,
        billing_period_months as core_billing_period_months,
        mrr,
        tier_rank
    from holdings
    where product_family = 'core'

),

core_subscription as (

    {{ deduplicate(
        'core_holdings',
        ['snapshot_date', 'account_id'],
        ['mrr desc', 'tier_rank desc nulls last', 'core_started_at', 'core_subscription_id']
    ) }}

),

core_renewals as (

    select
        snapshot_date,
        account_id,
        {{ next_renewal_date('core_started_at', 'core_term_months', 'snapshot_date') }}
            as core_renewal_date
    from core_subscription

),

core_product_units as (

    select
        holdings.snapshot_date,
        holdings.account_id,
        sum(holdings.quantity) as core_quantity,
        max(holdings.tier_rank) as core_tier_rank
    from holdings
    inner join core_subscription
        on core_subscription.snapshot_date = holdings.snapshot_date
        and core_subscription.account_id = holdings.account_id
        and core_subscription.core_product_id = holdings.product_id
    group by holdings.snapshot_date, holdings.account_id

),

first_starts as (

    select
        account_id,
        min(valid_from) as first_subscription_at
    from versions
    group by account_id

),

final as (

    select
        spine.account_id,
        spine.snapshot_date,
        coalesce(account_totals.products_held, 0) > 0 as is_active,
        cast(coalesce(account_totals.mrr, 0) as decimal(38, 6)) as mrr,
        cast(coalesce(account_totals.products_held, 0) as integer) as products_held,
        case
            when first_starts.first_subscription_at < spine.snapshot_end_at
            then first_starts.first_subscription_at
        end as first_subscription_at,
        core_subscription.core_subscription_id,
        core_subscription.core_product_id,
        core_subscription.core_plan_id,
        plans.plan_name as core_plan_name,
        cast(core_product_units.core_tier_rank as integer) as core_tier_rank,
        plans.is_top_tier,
        plans.next_tier_plan_name,
        cast(core_product_units.core_quantity as integer) as core_quantity,
        plans.pricing_model as core_pricing_model,
        cast(core_subscription.core_term_months as integer) as core_term_months,
        cast(core_subscription.core_billing_period_months as integer)
            as core_billing_period_months,
        core_subscription.core_term_months = 1 as is_monthly_term,
        core_renewals.core_renewal_date,
        cast({{ dbt.datediff(
            'spine.snapshot_date', renewal_date, 'day'
        ) }} as integer) as days_to_renewal,
        cast(
            case
                when {{ calendar_months_later }} > {{ renewal_date }}
                then {{ calendar_months }} - 1
                else {{ calendar_months }}
            end as integer
        ) as months_to_renewal,
        {{ snapshot_build_columns(plan) }}
    from spine
    left join account_totals
        on account_totals.snapshot_date = spine.snapshot_date
        and account_totals.account_id = spine.account_id
    left join core_subscription
        on core_subscription.snapshot_date = spine.snapshot_date
        and core_subscription.account_id = spine.account_id
    left join core_renewals
        on core_renewals.snapshot_date = spine.snapshot_date
        and core_renewals.account_id = spine.account_id
    left join core_product_units
        on core_product_units.snapshot_date = spine.snapshot_date
        and core_product_units.account_id = spine.account_id
    left join plans
        on plans.plan_id = core_subscription.core_plan_id
    left join first_starts
        on first_starts.account_id = spine.account_id

)

select * from final
