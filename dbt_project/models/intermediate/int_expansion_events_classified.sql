{#-
    Every change of a product's MRR or holding on an account, classified (see DECISIONLOG.md):

    product not held before, held after
        new           the account never held anything before this instant
        reactivation  the account held something before, but nothing right before
        cross_sell    the account held other products right before
    product held before, not held after
        churn         the account holds nothing right after
        contraction   the account still holds other products
    product held on both sides (per product: total MRR, total seats, highest tier)
        upsell        MRR up with a higher tier or more seats
        contraction   MRR down with a lower tier or fewer seats
        price_change  MRR moved with the same tier and seats (re-pricing, discount ending)

    Changes that move neither the MRR nor the holding are not events.
    mrr_change is signed (after - before); the mart columns use positive amounts.
-#}
with

product_changes as (

    select * from {{ ref('int_account_product_states_compared') }}

),

products as (

    select * from {{ ref('stg_billing__products') }}

),

classified as (

    select
        *,
        case
            when versions_before = 0 and versions_after > 0 then
                case
                    when not was_ever_active_before then 'new'
                    when account_products_before = 0 then 'reactivation'
                    else 'cross_sell'
                end
            when versions_before > 0 and versions_after = 0 then
                case
                    when account_products_after = 0 then 'churn'
                    else 'contraction'
                end
            when mrr_after > mrr_before then
                case
                    when tier_rank_after > tier_rank_before or quantity_after > quantity_before
                    then 'upsell'
                    else 'price_change'
                end
            when mrr_after < mrr_before then
                case
                    when tier_rank_after < tier_rank_before or quantity_after < quantity_before
                    then 'contraction'
                    else 'price_change'
                end
        end as movement_type
    from product_changes

),

final as (

    select
        {{ dbt.hash(dbt.concat([
            'classified.account_id', "'|'", 'classified.product_id', "'|'",
            'cast(classified.changed_at as ' ~ dbt.type_string() ~ ')'
        ])) }} as event_id,
        classified.account_id,
        classified.product_id,
        products.product_name,
        classified.changed_at as event_at,
        cast(classified.changed_at as date) as event_date,
        classified.movement_type,
        (
            classified.movement_type in ('upsell', 'cross_sell')
            and classified.mrr_after > classified.mrr_before
        ) as is_expansion,
        classified.mrr_before,
        classified.mrr_after,
        cast(classified.mrr_after - classified.mrr_before as decimal(38, 6))
            as mrr_change,
        classified.quantity_before,
        classified.quantity_after,
        classified.tier_rank_before,
        classified.tier_rank_after,
        classified.account_mrr_before,
        classified.account_mrr_after,
        classified.account_products_before,
        classified.account_products_after
    from classified
    left join products
        on products.product_id = classified.product_id
    where classified.movement_type is not null

)

select * from final
