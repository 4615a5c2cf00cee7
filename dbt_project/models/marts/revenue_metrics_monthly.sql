{#-
    Company-level MRR metrics per calendar month, summed from mrr_movements (reporting
    currency). Retention ratios are monthly and cover the accounts that opened the month
    with MRR (the existing-customer cohort):
      nrr = (opening + expansion + price_change - contraction - churn) / opening
      grr = (opening + min(price_change, 0) - contraction - churn) / opening
      logo_churn_rate = accounts that opened with MRR and closed with none / accounts that opened with MRR
    active_accounts counts accounts closing the month with MRR > 0.
-#}
with

movements as (

    select * from {{ ref('mrr_movements') }}

),

exact_movements as (

    -- the mart's doubles carry at most 6 decimals (DECIMAL(38,6) upstream): summing them back
    -- as decimals is exact and the same in every run, whatever order the rows are added in
    select
        month_start,
        cast(opening_mrr as decimal(38, 6)) as opening_mrr,
        cast(closing_mrr as decimal(38, 6)) as closing_mrr,
        cast(new_mrr as decimal(38, 6)) as new_mrr,
        cast(expansion_mrr as decimal(38, 6)) as expansion_mrr,
        cast(upsell_mrr as decimal(38, 6)) as upsell_mrr,
        cast(cross_sell_mrr as decimal(38, 6)) as cross_sell_mrr,
        cast(contraction_mrr as decimal(38, 6)) as contraction_mrr,
        cast(churn_mrr as decimal(38, 6)) as churn_mrr,
        cast(reactivation_mrr as decimal(38, 6)) as reactivation_mrr,
        cast(price_change_mrr as decimal(38, 6)) as price_change_mrr
    from movements

),

aggregated as (

    select
        month_start,
        sum(opening_mrr) as opening_mrr,
        sum(closing_mrr) as mrr,
        sum(new_mrr) as new_mrr,
        sum(expansion_mrr) as expansion_mrr,
        sum(upsell_mrr) as upsell_mrr,
        sum(cross_sell_mrr) as cross_sell_mrr,
        sum(contraction_mrr) as contraction_mrr,
        sum(churn_mrr) as churn_mrr,
        sum(reactivation_mrr) as reactivation_mrr,
        sum(price_change_mrr) as price_change_mrr,
        sum(
            opening_mrr + expansion_mrr + price_change_mrr
            - contraction_mrr - churn_mrr
        ) filter (where opening_mrr > 0) as retained_mrr,
        sum(
            opening_mrr + least(price_change_mrr, 0) - contraction_mrr - churn_mrr
        ) filter (where opening_mrr > 0) as gross_retained_mrr,
        count(*) filter (where opening_mrr > 0) as opening_accounts,
        count(*) filter (where opening_mrr > 0 and closing_mrr <= 0) as churned_accounts,
        count(*) filter (where closing_mrr > 0) as active_accounts
    from exact_movements
    group by month_start

),

final as (

    select
        month_start,
        cast(mrr as {{ type_double() }}) as mrr,
        cast(opening_mrr as {{ type_double() }}) as opening_mrr,
        cast(new_mrr as {{ type_double() }}) as new_mrr,
        cast(expansion_mrr as {{ type_double() }}) as expansion_mrr,
        cast(upsell_mrr as {{ type_double() }}) as upsell_mrr,
        cast(cross_sell_mrr as {{ type_double() }}) as cross_sell_mrr,
        cast(contraction_mrr as {{ type_double() }}) as contraction_mrr,
        cast(churn_mrr as {{ type_double() }}) as churn_mrr,
        cast(reactivation_mrr as {{ type_double() }}) as reactivation_mrr,
        cast(price_change_mrr as {{ type_double() }}) as price_change_mrr,
        {{ reporting_currency() }} as reporting_currency,
        {{ safe_divide('retained_mrr', 'opening_mrr') }} as nrr,
        {{ safe_divide('gross_retained_mrr', 'opening_mrr') }} as grr,
        {{ safe_divide('churned_accounts', 'opening_accounts') }} as logo_churn_rate,
        cast(active_accounts as integer) as active_accounts
    from aggregated

)

select * from final
