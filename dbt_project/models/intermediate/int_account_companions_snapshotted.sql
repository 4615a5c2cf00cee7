{#-
    Cross-sell candidates of each account at each snapshot date: the usual companions
    (int_product_companions.is_companion, measured on the same date) of the products it
    holds that it does not hold itself. The top companion is the one with the highest
    confidence P(companion | held product), then the highest lift, then the lowest id.
-#}
with

spine as (

    select * from {{ ref('int_account_snapshots_spined') }}

),

holdings as (

    select * from {{ ref('int_account_holdings_snapshotted') }}

),

companions as (

    select * from {{ ref('int_product_companions') }}

),

held_products as (

    select distinct snapshot_date, account_id, product_id
    from holdings

),

candidates as (

    select
        held_products.snapshot_date,
        held_products.account_id,
        companions.companion_product_id,
        companions.companion_product_name,
        max(companions.confidence) as confidence,
        max(companions.lift) as lift
    from held_products
    inner join companions
        on companions.snapshot_date = held_products.snapshot_date
        and companions.product_id = held_products.product_id
        and companions.is_companion
    anti join held_products as already_held
        on already_held.snapshot_date = held_products.snapshot_date
        and already_held.account_id = held_products.account_id
        and already_held.product_id = companions.companion_product_id
    group by all

),

ranked as (

    select
        snapshot_date,
        account_id,
        count(*) over (partition by snapshot_date, account_id) as companion_products_not_held,
        companion_product_id as top_companion_product_id,
        companion_product_name as top_companion_product_name
    from candidates
    qualify row_number() over (
        partition by snapshot_date, account_id
        order by confidence desc, lift desc, companion_product_id
    ) = 1

),

final as (

    select
        spine.account_id,
        spine.snapshot_date,
        cast(coalesce(ranked.companion_products_not_held, 0) as integer) as companion_products_not_held,
        ranked.top_companion_product_id,
        ranked.top_companion_product_name
    from spine
    left join ranked
        on ranked.snapshot_date = spine.snapshot_date
        and ranked.account_id = spine.account_id

)

select * from final
