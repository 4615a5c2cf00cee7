{#-
    THE ML FEATURE TABLE: one row per account per snapshot date (the last
    snapshot_history_months month-ends on or before as_of, plus as_of itself), for accounts
    created on or before the snapshot date.
    Point-in-time rule: every feature uses only what was known at the end of the snapshot
    day (event timestamps < snapshot_date + 1 day, usage_date <= snapshot_date). Labels use
    the days (snapshot_date, snapshot_date + label_horizon_days], never after as_of / the end
    of the data; is_label_complete says whether the whole window was observed.
    Firmographics (segment, industry, country, billing_currency) are the latest known values.
    Usage features are per declared metric: account_metric_snapshots (long) and
    account_features (this table plus one column per metric and stat); here only the limit
    pressure over all metrics (the highest utilization, its metric, the highest among limits
    that grow with the core plan's quantity). The next tier and the upsell and cross-sell
    offers (not features) come from account_offers.
    Health (four 0-100 components and their mean) and the loyalty stage are for people, not
    model features: int_account_health_snapshotted, DECISIONLOG.md "Health and loyalty".
    Incremental by snapshot date (macros/snapshot_incremental.sql, state in
    marts._incremental_builds): a build recomputes the new as_of, the dates its changed inputs
    touch and the dates whose labels were not complete (their window reaches past the previous
    build's as_of); `dbt build --full-refresh` gives the same rows.
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan(labels=true, state='table') %}
with

spine as (

    {{ snapshot_spine(plan) }}

),

crm_accounts as (

    select * from {{ ref('stg_crm__accounts') }}

),

customers as (

    select * from {{ ref('stg_billing__customers') }}

),

contracts as (

    select * from {{ ref('int_account_contracts_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

movements as (

    select * from {{ ref('int_account_movements_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

companions as (

    select * from {{ ref('int_account_companions_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

metric_snapshots as (

    select * from {{ ref('account_metric_snapshots') }}
    where {{ snapshot_dates_filter(plan) }}

),

tickets as (

    select * from {{ ref('int_account_tickets_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

nps as (

    select * from {{ ref('int_account_nps_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

activities as (

    select * from {{ ref('int_account_activities_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

invoices as (

    select * from {{ ref('int_account_invoices_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

opportunities as (

    select * from {{ ref('int_account_opportunities_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

labels as (

    select * from {{ ref('int_account_labels_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

health as (

    select * from {{ ref('int_account_health_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

offers as (

    select * from {{ ref('account_offers') }}
    where {{ snapshot_dates_filter(plan) }}

),

billing_currency as (

    -- an account billed by several customers is reported in its oldest customer's currency
    select
        account_id,
        currency as billing_currency
    from (
        {{ deduplicate('customers', ['account_id'], ['created_at', 'customer_id']) }}
    ) as oldest_customer

),

limited_metrics as (

    select
        account_id,
        snapshot_date,
        metric,
        utilization,
        limit_is_per_unit
    from metric_snapshots
    where utilization is not null

),

highest_utilization as (

    select
        account_id,
        snapshot_date,
        max(utilization) as max_limit_utilization,
        max(utilization) filter (where limit_is_per_unit) as per_unit_limit_utilization
    from limited_metrics
    group by account_id, snapshot_date

),

limit_pressure as (

    -- the metric at the highest utilization; ties go to the first metric name
    select
        highest_utilization.account_id,
        highest_utilization.snapshot_date,
        highest_utilization.max_limit_utilization,
        highest_utilization.per_unit_limit_utilization,
        min(limited_metrics.metric) as binding_limit_metric
    from highest_utilization
    inner join limited_metrics
        on limited_metrics.account_id = highest_utilization.account_id
        and limited_metrics.snapshot_date = highest_utilization.snapshot_date
        and limited_metrics.utilization = highest_utilization.max_limit_utilization
    group by
        highest_utilization.account_id,
        highest_utilization.snapshot_date,
        highest_utilization.max_limit_utilization,
        highest_utilization.per_unit_limit_utilization

),

final as (

    select
        spine.account_id,
        spine.snapshot_date,
        contracts.is_active,
        crm_accounts.segment,
        crm_accounts.industry,
        crm_accounts.country,
        billing_currency.billing_currency,
        cast({{ dbt.datediff(
            'cast(coalesce(contracts.first_subscription_at, crm_accounts.created_at) as date)',
            'spine.snapshot_date',
            'day'
        ) }} as integer) as tenure_days,
        cast(contracts.mrr as {{ type_double() }}) as mrr,
        cast(movements.mrr_90d_ago as {{ type_double() }}) as mrr_90d_ago,
        cast(contracts.mrr - movements.mrr_90d_ago as {{ type_double() }})
            as mrr_change_90d,
        {{ reporting_currency() }} as reporting_currency,
        contracts.products_held,
        companions.companion_products_not_held,
        companions.top_companion_product_id,
        companions.top_companion_product_name,
        contracts.core_tier_rank,
        contracts.is_top_tier,
        contracts.core_quantity,
        contracts.core_pricing_model,
        contracts.core_term_months,
        contracts.core_billing_period_months,
        contracts.is_monthly_term,
        limit_pressure.max_limit_utilization,
        limit_pressure.binding_limit_metric,
        limit_pressure.per_unit_limit_utilization,
        contracts.days_to_renewal,
        contracts.months_to_renewal,
        tickets.tickets_open,
        tickets.urgent_tickets_open,
        tickets.tickets_90d,
        nps.nps_latest,
        nps.nps_previous,
        nps.days_since_nps,
        nps.is_promoter_90d,
        nps.is_detractor_90d,
        activities.activities_30d,
        activities.meetings_90d,
        activities.days_since_last_activity,
        invoices.invoices_paid_late_365d,
        invoices.invoices_overdue_open,
        opportunities.opportunities_open,
        opportunities.opportunities_won_365d,
        movements.days_since_last_expansion,
        movements.days_since_last_contraction,
        offers.next_tier_plan_name,
        offers.upsell_offer_kind,
        offers.upsell_plan_id,
        offers.upsell_plan_name,
        offers.upsell_units,
        offers.upsell_offer_mrr,
        offers.upsell_limit_metric,
        offers.upsell_limit_from,
        offers.upsell_limit_to,
        offers.cross_sell_product_id,
        offers.cross_sell_product_name,
        offers.cross_sell_plan_id,
        offers.cross_sell_plan_name,
        offers.cross_sell_units,
        offers.cross_sell_offer_mrr,
        labels.label_expansion,
        labels.label_upsell,
        labels.label_cross_sell,
        cast(labels.expansion_mrr_next as {{ type_double() }}) as expansion_mrr_next,
        labels.is_label_complete,
        health.health_adoption,
        health.health_engagement,
        health.health_support,
        health.health_sentiment,
        health.health_score,
        health.loyalty_stage
    from spine
    inner join crm_accounts
        on crm_accounts.account_id = spine.account_id
    left join billing_currency
        on billing_currency.account_id = spine.account_id
    left join contracts
        on contracts.account_id = spine.account_id
        and contracts.snapshot_date = spine.snapshot_date
    left join movements
        on movements.account_id = spine.account_id
        and movements.snapshot_date = spine.snapshot_date
    left join companions
        on companions.account_id = spine.account_id
        and companions.snapshot_date = spine.snapshot_date
    left join limit_pressure
        on limit_pressure.account_id = spine.account_id
        and limit_pressure.snapshot_date = spine.snapshot_date
    left join tickets
        on tickets.account_id = spine.account_id
        and tickets.snapshot_date = spine.snapshot_date
    left join nps
        on nps.account_id = spine.account_id
        and nps.snapshot_date = spine.snapshot_date
    left join activities
        on activities.account_id = spine.account_id
        and activities.snapshot_date = spine.snapshot_date
    left join invoices
        on invoices.account_id = spine.account_id
        and invoices.snapshot_date = spine.snapshot_date
    left join opportunities
        on opportunities.account_id = spine.account_id
        and opportunities.snapshot_date = spine.snapshot_date
    left join labels
        on labels.account_id = spine.account_id
        and labels.snapshot_date = spine.snapshot_date
    left join health
        on health.account_id = spine.account_id
        and health.snapshot_date = spine.snapshot_date
    left join offers
        on offers.account_id = spine.account_id
        and offers.snapshot_date = spine.snapshot_date

)

select * from final
