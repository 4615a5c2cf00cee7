{#-
    One row per month: the MRR of the movements bridge against what was invoiced, with the
    difference explained (all amounts in the reporting currency, at the month's close: the
    end of the month, or of the as_of day for the as_of month).

    An invoice of a subscription bills its service period [issued_at, issued_at + billing
    period); its monthly equivalent is amount_due / billing_period_months. It counts for a
    month when its period covers the month's close. Invoices without a subscription
    (one-off charges) are not recurring revenue and are left out. An invoice converts to the
    reporting currency at the rates of the month of the version it bills (the version in
    force at its issue, whose booked rates give the contract MRR it is compared with), or of
    its issue month when no version was in force: an invoice that bills exactly its contract
    shows no variance, whatever the exchange rates did in between.

        contracted_mrr = invoiced_mrr + voided_mrr + billing_variance_mrr
                         + changed_since_invoiced_mrr - canceled_in_billed_period_mrr
                         + not_invoiced_mrr

    per subscription and month:
        billing_variance          contract MRR in force when the covering invoice was issued
                                  minus what that invoice billed (discounts, credits, errors)
        changed_since_invoiced    contract MRR now minus contract MRR at the invoice's issue:
                                  upgrades and downgrades not billed yet (no proration invoice)
        canceled_in_billed_period service ended inside a billed period (billed, not held)
        not_invoiced              held, but no invoice covers the month's close
    unexplained_mrr is what the equation leaves over (0 unless data is inconsistent), and
    movements_closing_mrr is the mrr_movements bridge's closing MRR summed over accounts,
    which must equal contracted_mrr.
    Incremental by month like mrr_movements (macros/snapshot_incremental.sql,
    month_rebuild_plan): a build recomputes the months from plan.from_month, from the
    invoices whose service period reaches into them; `dbt build --full-refresh` gives the
    same rows.
-#}
{#- the months this build recomputes: from plan.from_month (none: all) -#}
{%- set plan = month_rebuild_plan() %}
with

movements as (

    select * from {{ ref('mrr_movements') }}

),

versions as (

    select * from {{ ref('int_subscription_versions_ranged') }}

),

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

subscriptions as (

    select * from {{ ref('stg_billing__subscriptions') }}

),

pipeline_dates as (

    select * from {{ ref('int_pipeline_dates_resolved') }}

),

movement_months as (

    select
        month_start,
        sum(cast(closing_mrr as decimal(38, 6))) as movements_closing_mrr
    from movements
    where {{ month_rebuild_filter(plan) }}
    group by month_start

),

month_ends as (

    select
        movement_months.month_start,
        movement_months.movements_closing_mrr,
        least(
            cast({{ dbt.dateadd('month', 1, 'movement_months.month_start') }} as timestamp),
            pipeline_dates.as_of_end_at
        ) as closing_at
    from movement_months
    cross join pipeline_dates

),

contracted as (

    select
        month_ends.month_start,
        versions.subscription_id,
        versions.mrr
    from month_ends
    inner join versions
        on versions.valid_from < month_ends.closing_at
        and (versions.valid_to is null or versions.valid_to >= month_ends.closing_at)

),

billed_periods as (

    select
        invoices.invoice_id,
        invoices.subscription_id,
        invoices.issued_at,
        invoices.status,
        {{ dbt.dateadd('month', 'subscriptions.billing_period_months', 'invoices.issued_at') }}
            as period_end_at,
        invoices.amount_due / subscriptions.billing_period_months as invoice_mrr_local,
        invoices.currency
    from invoices
    inner join subscriptions
        on subscriptions.subscription_id = invoices.subscription_id
    where invoices.issued_at < (select pipeline_dates.as_of_end_at from pipeline_dates)
    {%- if plan.from_month is not none %}
        -- only a period that ends after the first recomputed month can cover a month's close
        and {{ dbt.dateadd('month', 'subscriptions.billing_period_months', 'invoices.issued_at') }}
        > cast('{{ plan.from_month }}' as timestamp)
    {%- endif %}

),

billed_versions as (

    select
        billed_periods.invoice_id,
        billed_periods.subscription_id,
        billed_periods.issued_at,
        billed_periods.status,
        billed_periods.period_end_at,
        cast(
            {{ to_reporting_currency(
                'billed_periods.invoice_mrr_local',
                'billed_periods.currency',
                'coalesce(versions.rate_month, cast(billed_periods.issued_at as date))'
            ) }}
            as decimal(38, 6)
        ) as invoice_mrr,
        coalesce(versions.mrr, 0) as contract_mrr_at_issue
    from billed_periods
    left join versions
        on versions.subscription_id = billed_periods.subscription_id
        and versions.valid_from <= billed_periods.issued_at
        and (versions.valid_to is null or versions.valid_to > billed_periods.issued_at)

),

covering as (

    select
        month_ends.month_start,
        billed_versions.subscription_id,
        sum(
            case
                when billed_versions.status = 'void' then 0
                else billed_versions.invoice_mrr
            end
        ) as invoiced_mrr,
        sum(
            case
                when billed_versions.status = 'void' then billed_versions.invoice_mrr
                else 0
            end
        ) as voided_mrr,
        sum(billed_versions.contract_mrr_at_issue) as contract_mrr_at_issue
    from month_ends
    inner join billed_versions
        on billed_versions.issued_at < month_ends.closing_at
        and billed_versions.period_end_at >= month_ends.closing_at
    group by month_ends.month_start, billed_versions.subscription_id

),

per_subscription as (

    select
        coalesce(contracted.month_start, covering.month_start) as month_start,
        coalesce(contracted.mrr, 0) as contracted_mrr,
        coalesce(covering.invoiced_mrr, 0) as invoiced_mrr,
        coalesce(covering.voided_mrr, 0) as voided_mrr,
        case
            when covering.subscription_id is not null
            then
                covering.contract_mrr_at_issue
                - covering.invoiced_mrr
                - covering.voided_mrr
            else 0
        end as billing_variance_mrr,
        case
            when contracted.subscription_id is not null and covering.subscription_id is not null
            then contracted.mrr - covering.contract_mrr_at_issue
            else 0
        end as changed_since_invoiced_mrr,
        case
            when contracted.subscription_id is null then covering.contract_mrr_at_issue
            else 0
        end as canceled_in_billed_period_mrr,
        case
            when covering.subscription_id is null then contracted.mrr
            else 0
        end as not_invoiced_mrr
    from contracted
    full outer join covering
        on covering.month_start = contracted.month_start
        and covering.subscription_id = contracted.subscription_id

),

monthly as (

    select
        month_ends.month_start,
        month_ends.closing_at,
        month_ends.movements_closing_mrr,
        coalesce(sum(per_subscription.contracted_mrr), 0) as contracted_mrr,
        coalesce(sum(per_subscription.invoiced_mrr), 0) as invoiced_mrr,
        coalesce(sum(per_subscription.voided_mrr), 0) as voided_mrr,
        coalesce(sum(per_subscription.billing_variance_mrr), 0) as billing_variance_mrr,
        coalesce(sum(per_subscription.changed_since_invoiced_mrr), 0)
            as changed_since_invoiced_mrr,
        coalesce(sum(per_subscription.canceled_in_billed_period_mrr), 0)
            as canceled_in_billed_period_mrr,
        coalesce(sum(per_subscription.not_invoiced_mrr), 0) as not_invoiced_mrr
    from month_ends
    left join per_subscription
        on per_subscription.month_start = month_ends.month_start
    group by month_ends.month_start, month_ends.closing_at, month_ends.movements_closing_mrr

),

final as (

    select
        month_start,
        closing_at,
        cast(movements_closing_mrr as {{ type_double() }}) as movements_closing_mrr,
        cast(contracted_mrr as {{ type_double() }}) as contracted_mrr,
        cast(invoiced_mrr as {{ type_double() }}) as invoiced_mrr,
        cast(voided_mrr as {{ type_double() }}) as voided_mrr,
        cast(billing_variance_mrr as {{ type_double() }}) as billing_variance_mrr,
        cast(changed_since_invoiced_mrr as {{ type_double() }})
            as changed_since_invoiced_mrr,
        cast(canceled_in_billed_period_mrr as {{ type_double() }})
            as canceled_in_billed_period_mrr,
        cast(not_invoiced_mrr as {{ type_double() }}) as not_invoiced_mrr,
        cast(
            contracted_mrr
            - (
                invoiced_mrr + voided_mrr + billing_variance_mrr
                + changed_since_invoiced_mrr - canceled_in_billed_period_mrr
                + not_invoiced_mrr
            )
            as {{ type_double() }}
        ) as unexplained_mrr,
        {{ reporting_currency() }} as reporting_currency
    from monthly

)

select * from final
