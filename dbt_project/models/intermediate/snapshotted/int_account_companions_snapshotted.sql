{#-
    Cross-sell candidates of each account at each snapshot date, from the product pairs
    measured on the same date (int_product_companions_measured):
      companion_products_not_held  usual companions (is_companion: lift above chance) of the
                                   held products that the account does not hold
      top_companion_product_*      the most likely next product: among products not held
                                   that are frequently held with a held product (is_frequent),
                                   usual companions first, then the highest confidence
                                   P(product | held product), then lift, then id. An account
                                   holding only the core product (lift ~1 with everything)
                                   still gets the add-on most core holders buy.
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan() %}
with

spine as (

    {{ snapshot_spine(plan) }}

),

holdings as (

    select * from {{ ref('int_account_holdings_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

companions as (

    select * from {{ ref('int_product_companions_measured') }}
    where {{ snapshot_dates_filter(plan) }}

),

held_products as (

    select distinct
        snapshot_date,
        account_id,
        product_id
    from holdings

),

candidates as (

    select
        held_products.snapshot_date,
        held_products.account_id,
        companions.companion_product_id,
        companions.companion_product_name,
        {{ dbt.bool_or('companions.is_companion') }} as is_companion,
        max(companions.confidence) as confidence,
        max(companions.lift) as lift
    from held_products
    inner join companions
        on companions.snapshot_date = held_products.snapshot_date
        and companions.product_id = held_products.product_id
        and companions.is_frequent
    where
        not exists (
            select 1
            from held_products as already_held
            where already_held.snapshot_date = held_products.snapshot_date
                and already_held.account_id = held_products.account_id
                and already_held.product_id = companions.companion_product_id
        )
    group by
        held_products.snapshot_date,
        held_products.account_id,
        companions.companion_product_id,
        companions.companion_product_name

),

ordered as (

    select
        snapshot_date,
        account_id,
        count(*) filter (where is_companion) over (partition by snapshot_date, account_id)
            as companion_products_not_held,
        companion_product_id as top_companion_product_id,
        companion_product_name as top_companion_product_name,
        row_number() over (
            partition by snapshot_date, account_id
            order by is_companion desc, confidence desc, lift desc, companion_product_id asc
        ) as candidate_rank
    from candidates

),

ranked as (

    select
        snapshot_date,
        account_id,
        companion_products_not_held,
        top_companion_product_id,
        top_companion_product_name
    from ordered
    where candidate_rank = 1

),

final as (

    select
        spine.account_id,
        spine.snapshot_date,
        cast(coalesce(ranked.companion_products_not_held, 0) as integer)
            as companion_products_not_held,
        ranked.top_companion_product_id,
        ranked.top_companion_product_name,
        {{ snapshot_build_columns(plan) }}
    from spine
    left join ranked
        on ranked.snapshot_date = spine.snapshot_date
        and ranked.account_id = spine.account_id

)

select * from final
