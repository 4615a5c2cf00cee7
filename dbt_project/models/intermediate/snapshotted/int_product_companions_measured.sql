{#-
    Which products are held together, measured at each snapshot date from the holdings of
    that date only (so a past snapshot never learns from later purchases).
    One row per (snapshot_date, product_id, companion_product_id), product != companion:
      support    = accounts holding both / accounts holding anything
      confidence = accounts holding both / accounts holding product_id   (P(companion | product))
      lift       = confidence / (accounts holding companion / accounts holding anything)
    is_frequent marks the pairs held together by at least companion_min_support of active
    accounts and companion_min_pair_accounts accounts; is_companion the frequent pairs that
    are also held together more often than chance (lift > companion_min_lift), i.e. the
    "usual companions". A product nearly everyone holds (the core product) has lift ~1 with
    everything: it is frequent with the add-ons but nobody's usual companion.
    Incremental by snapshot date (macros/snapshot_incremental.sql): a date's pairs change only
    with the holdings of that date.
-#}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan() %}
with

holdings as (

    select * from {{ ref('int_account_holdings_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

products as (

    select * from {{ ref('stg_billing__products') }}

),

account_products as (

    select distinct
        snapshot_date,
        account_id,
        product_id
    from holdings

),

active_accounts as (

    select
        snapshot_date,
        count(distinct account_id) as accounts_active
    from account_products
    group by snapshot_date

),

product_counts as (

    select
        snapshot_date,
        product_id,
        count(*) as accounts_holding
    from account_products
    group by snapshot_date, product_id

),

pair_counts as (

    select
        held.snapshot_date,
        held.product_id,
        companion.product_id as companion_product_id,
        count(*) as accounts_holding_both
    from account_products as held
    inner join account_products as companion
        on companion.snapshot_date = held.snapshot_date
        and companion.account_id = held.account_id
        and companion.product_id != held.product_id
    group by held.snapshot_date, held.product_id, companion.product_id

),

measured as (

    select
        pair_counts.snapshot_date,
        pair_counts.product_id,
        pair_counts.companion_product_id,
        products.product_name as companion_product_name,
        pair_counts.accounts_holding_both,
        product_counts.accounts_holding as accounts_holding_product,
        companion_counts.accounts_holding as accounts_holding_companion,
        active_accounts.accounts_active,
        {{ safe_divide('pair_counts.accounts_holding_both', 'active_accounts.accounts_active') }}
            as support,
        {{ safe_divide('pair_counts.accounts_holding_both', 'product_counts.accounts_holding') }}
            as confidence,
        {{ safe_divide(
            safe_divide('pair_counts.accounts_holding_both', 'product_counts.accounts_holding'),
            safe_divide('companion_counts.accounts_holding', 'active_accounts.accounts_active')
        ) }} as lift
    from pair_counts
    inner join product_counts
        on product_counts.snapshot_date = pair_counts.snapshot_date
        and product_counts.product_id = pair_counts.product_id
    inner join product_counts as companion_counts
        on companion_counts.snapshot_date = pair_counts.snapshot_date
        and companion_counts.product_id = pair_counts.companion_product_id
    inner join active_accounts
        on active_accounts.snapshot_date = pair_counts.snapshot_date
    left join products
        on products.product_id = pair_counts.companion_product_id

),

final as (

    select
        *,
        (
            support >= {{ var('companion_min_support') }}
            and accounts_holding_both >= {{ var('companion_min_pair_accounts') }}
        ) as is_frequent,
        (
            support >= {{ var('companion_min_support') }}
            and accounts_holding_both >= {{ var('companion_min_pair_accounts') }}
            and lift > {{ var('companion_min_lift') }}
        ) as is_companion,
        {{ snapshot_build_columns(plan) }}
    from measured

)

select * from final
