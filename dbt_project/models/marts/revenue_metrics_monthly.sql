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
        cast(opening_mrr_usd as decimal(38, 6)) as opening_mrr_usd,
        cast(closing_mrr_usd as decimal(38, 6)) as closing_mrr_usd,
        cast(new_mrr_usd as decimal(38, 6)) as new_mrr_usd,
        cast(expansion_mrr_usd as decimal(38, 6)) as expansion_mrr_usd,
        cast(upsell_mrr_usd as decimal(38, 6)) as upsell_mrr_usd,
        cast(cross_sell_mrr_usd as decimal(38, 6)) as cross_sell_mrr_usd,
        cast(contraction_mrr_usd as decimal(38, 6)) as contraction_mrr_usd,
        cast(churn_mrr_usd as decimal(38, 6)) as churn_mrr_usd,
        cast(reactivation_mrr_usd as decimal(38, 6)) as reactivation_mrr_usd,
        cast(price_change_mrr_usd as decimal(38, 6)) as price_change_mrr_usd
    from movements

),

aggregated as (

    select
        month_start,
        sum(opening_mrr_usd) as opening_mrr_usd,
        sum(closing_mrr_usd) as mrr_usd,
        sum(new_mrr_usd) as new_mrr_usd,
        sum(expansion_mrr_usd) as expansion_mrr_usd,
        sum(upsell_mrr_usd) as upsell_mrr_usd,
        sum(cross_sell_mrr_usd) as cross_sell_mrr_usd,
        sum(contraction_mrr_usd) as contraction_mrr_usd,
        sum(churn_mrr_usd) as churn_mrr_usd,
        sum(reactivation_mrr_usd) as reactivation_mrr_usd,
        sum(price_change_mrr_usd) as price_change_mrr_usd,
        sum(
            opening_mrr_usd + expansion_mrr_usd + price_change_mrr_usd
            - contraction_mrr_usd - churn_mrr_usd
        ) filter (where opening_mrr_usd > 0) as retained_mrr_usd,
        sum(
            opening_mrr_usd + least(price_change_mrr_usd, 0) - contraction_mrr_usd - churn_mrr_usd
        ) filter (where opening_mrr_usd > 0) as gross_retained_mrr_usd,
        count(*) filter (where opening_mrr_usd > 0) as opening_accounts,
        count(*) filter (where opening_mrr_usd > 0 and closing_mrr_usd <= 0) as churned_accounts,
        count(*) filter (where closing_mrr_usd > 0) as active_accounts
    from exact_movements
    group by month_start

),

final as (

    select
        month_start,
        cast(mrr_usd as {{ type_double() }}) as mrr_usd,
        cast(opening_mrr_usd as {{ type_double() }}) as opening_mrr_usd,
        cast(new_mrr_usd as {{ type_double() }}) as new_mrr_usd,
        cast(expansion_mrr_usd as {{ type_double() }}) as expansion_mrr_usd,
        cast(upsell_mrr_usd as {{ type_double() }}) as upsell_mrr_usd,
        cast(cross_sell_mrr_usd as {{ type_double() }}) as cross_sell_mrr_usd,
        cast(contraction_mrr_usd as {{ type_double() }}) as contraction_mrr_usd,
        cast(churn_mrr_usd as {{ type_double() }}) as churn_mrr_usd,
        cast(reactivation_mrr_usd as {{ type_double() }}) as reactivation_mrr_usd,
        cast(price_change_mrr_usd as {{ type_double() }}) as price_change_mrr_usd,
        {{ safe_divide('retained_mrr_usd', 'opening_mrr_usd') }} as nrr,
        {{ safe_divide('gross_retained_mrr_usd', 'opening_mrr_usd') }} as grr,
        {{ safe_divide('churned_accounts', 'opening_accounts') }} as logo_churn_rate,
        cast(active_accounts as integer) as active_accounts
    from aggregated

)

select * from final
