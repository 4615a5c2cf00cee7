{#-
    The account's total MRR and holdings right after each instant at which they may change.
    One row per (account_id, changed_at); the state holds until the next row. Point-in-time
    look-ups use an ASOF join: the state at the end of day d is the last row with
    changed_at < d + 1 day (zero / not active when there is none).
-#}
with

product_changes as (

    select * from {{ ref('int_account_product_states_compared') }}

),

final as (

    select
        account_id,
        changed_at,
        -- the account totals are the same on every product row of one instant
        cast(max(account_mrr_after) as decimal(38, 6)) as mrr,
        max(account_products_after) as products_held,
        max(account_products_after) > 0 as is_active
    from product_changes
    group by account_id, changed_at

)

select * from final
