{#-
    The state of every product an account holds right before and right after each instant
    at which any of its subscription versions starts or ends. One row per
    (account_id, changed_at, product_id) for every product held on either side of the instant,
    changed or not, so account-level totals can be summed from the rows of one instant.

    A version is held right before t when valid_from < t <= valid_to (or valid_to is null)
    and right after t when valid_from <= t < valid_to (or valid_to is null).
-#}
{#- of the versions touching the instant (valid_from <= t <= valid_to), those held on each side -#}
{%- set held_before = 'versions.valid_from < instants.changed_at' %}
{%- set held_after = 'versions.valid_to is null or versions.valid_to > instants.changed_at' %}
with

versions as (

    select * from {{ ref('int_subscription_versions_ranged') }}

),

instants as (

    select
        account_id,
        valid_from as changed_at
    from versions
    union
    select
        account_id,
        valid_to as changed_at
    from versions
    where valid_to is not null

),

first_starts as (

    select
        account_id,
        min(valid_from) as first_started_at
    from versions
    group by account_id

),

product_states as (

    select
        instants.account_id,
        instants.changed_at,
        versions.product_id,
        count(*) filter (where {{ held_before }}) as versions_before,
        count(*) filter (where {{ held_after }}) as versions_after,
        cast(
            coalesce(sum(versions.mrr) filter (where {{ held_before }}), 0) as decimal(38, 6)
        ) as mrr_before,
        cast(
            coalesce(sum(versions.mrr) filter (where {{ held_after }}), 0) as decimal(38, 6)
        ) as mrr_after,
        coalesce(sum(versions.quantity) filter (where {{ held_before }}), 0) as quantity_before,
        coalesce(sum(versions.quantity) filter (where {{ held_after }}), 0) as quantity_after,
        max(versions.tier_rank) filter (where {{ held_before }}) as tier_rank_before,
        max(versions.tier_rank) filter (where {{ held_after }}) as tier_rank_after
    from instants
    inner join versions
        on versions.account_id = instants.account_id
        and versions.valid_from <= instants.changed_at
        and (versions.valid_to is null or versions.valid_to >= instants.changed_at)
    group by instants.account_id, instants.changed_at, versions.product_id

),

with_account_state as (

    select
        product_states.*,
        cast(sum(product_states.mrr_before) over account_instant as decimal(38, 6))
            as account_mrr_before,
        cast(sum(product_states.mrr_after) over account_instant as decimal(38, 6))
            as account_mrr_after,
        count(*) filter (where product_states.versions_before > 0) over account_instant
            as account_products_before,
        count(*) filter (where product_states.versions_after > 0) over account_instant
            as account_products_after,
        first_starts.first_started_at < product_states.changed_at as was_ever_active_before
    from product_states
    inner join first_starts
        on first_starts.account_id = product_states.account_id
    window account_instant as (partition by product_states.account_id, product_states.changed_at)

)

select * from with_account_state
