{#-
    The next-best upsell and cross-sell of each account at each snapshot date, from the
    catalogue (rules in DECISIONLOG.md, "Offers"). One row per account and snapshot date (the
    spine); the offer columns are null for an account without a core subscription and where no
    offer exists. Amounts are monthly list prices in the reporting currency at the rates of the
    snapshot's month (int_plan_prices_converted), and every offer adds more than 0.
      upsell      when the account presses a limit (the highest utilization, a limit of 0
                  it does not use aside, at or above var offer_limit_threshold): the cheapest
                  step that brings it under the threshold, of more units of a per-unit core
                  plan, packs of an add-on that raises the limit, or the next tier; else the
                  next tier (at the account's billing period); else none
      cross-sell  the first candidate of int_account_cross_sells_ranked (its usual
                  companion, else the product most held), the second when the upsell already
                  offers the first
    Incremental by snapshot date (macros/snapshot_incremental.sql, state in
    marts._incremental_builds): a date's offers come from that date's contracts, usage and
    prices; `dbt build --full-refresh` gives the same rows.
-#}
{%- if not (var('offer_limit_threshold') | float > 0) %}
    {{ exceptions.raise_compiler_error(
        "var offer_limit_threshold must be a utilization above 0 (e.g. 0.85), not '"
        ~ var('offer_limit_threshold') ~ "'"
    ) }}
{%- endif %}
{%- set threshold = 'cast(' ~ var('offer_limit_threshold') ~ ' as ' ~ type_double() ~ ')' %}
{#- the snapshot dates this build recomputes: macros/snapshot_incremental.sql -#}
{%- set plan = snapshot_rebuild_plan(state='table') %}
with

spine as (

    {{ snapshot_spine(plan) }}

),

contracts as (

    select * from {{ ref('int_account_contracts_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

holdings as (

    select * from {{ ref('int_account_holdings_snapshotted') }}
    where {{ snapshot_dates_filter(plan) }}

),

plans as (

    select * from {{ ref('int_plans_laddered') }}

),

plan_limits as (

    select * from {{ ref('stg_billing__plan_limits') }}

),

metric_snapshots as (

    select * from {{ ref('account_metric_snapshots') }}
    where {{ snapshot_dates_filter(plan) }}

),

plan_prices as (

    select * from {{ ref('int_plan_prices_converted') }}
    where {{ snapshot_dates_filter(plan) }}

),

cross_sell_candidates as (

    select * from {{ ref('int_account_cross_sells_ranked') }}
    where {{ snapshot_dates_filter(plan) }}

),

core as (

    -- active accounts with a core subscription: its plan and what it costs at list price
    select
        contracts.account_id,
        contracts.snapshot_date,
        contracts.core_plan_id,
        contracts.core_quantity,
        contracts.core_billing_period_months,
        plans.product_id as core_product_id,
        plans.tier_rank as core_plan_tier_rank,
        plans.currency as core_currency,
        plans.pricing_model as core_pricing_model,
        prices.list_price as core_unit_price,
        {{ plan_mrr('plans.pricing_model', 'prices.list_price', 'contracts.core_quantity') }}
            as core_list_mrr
    from contracts
    inner join plans
        on plans.plan_id = contracts.core_plan_id
    inner join plan_prices as prices
        on prices.plan_id = contracts.core_plan_id
        and prices.snapshot_date = contracts.snapshot_date
    where contracts.is_active

),

held_core_plans as (

    select distinct
        core_plan_id as plan_id,
        core_billing_period_months as billing_period_months
    from core

),

held_ladders as (

    -- the next tier of each held core plan at each billing period it is held on
    select
        held.plan_id as core_plan_id,
        held.billing_period_months as core_billing_period_months,
        higher.plan_id as next_tier_plan_id,
        row_number() over (
            partition by held.plan_id, held.billing_period_months
            order by {{ plan_preference(
                'higher', 'current_plan.currency', 'held.billing_period_months'
            ) }}
        ) as closeness
    from held_core_plans as held
    inner join plans as current_plan
        on current_plan.plan_id = held.plan_id
    inner join plans as higher
        on higher.product_id = current_plan.product_id
        and higher.tier_rank > current_plan.tier_rank
        and {{ billing_period_matches(
            'higher.billing_period_months', 'held.billing_period_months'
        ) }}

),

next_tiers as (

    -- the account's next tier and the MRR moving up adds (same quantity)
    select
        core.account_id,
        core.snapshot_date,
        held_ladders.next_tier_plan_id,
        next_plan.plan_name as next_tier_plan_name,
        {{ plan_mrr('next_plan.pricing_model', 'prices.list_price', 'core.core_quantity') }}
        - core.core_list_mrr as tier_mrr
    from core
    inner join held_ladders
        on held_ladders.core_plan_id = core.core_plan_id
        and held_ladders.core_billing_period_months
        is not distinct from core.core_billing_period_months
        and held_ladders.closeness = 1
    inner join plans as next_plan
        on next_plan.plan_id = held_ladders.next_tier_plan_id
    inner join plan_prices as prices
        on prices.plan_id = held_ladders.next_tier_plan_id
        and prices.snapshot_date = core.snapshot_date

),

account_limits as (

    -- each limit of the account with its usage; pressure = utilization, except that a
    -- limit of 0 the account does not use (a feature its plan leaves out) presses nothing
    select
        metric_snapshots.account_id,
        metric_snapshots.snapshot_date,
        metric_snapshots.metric,
        metric_snapshots.effective_limit,
        metric_snapshots.usage_against_limit,
        case
            when
                metric_snapshots.effective_limit = 0
                and coalesce(metric_snapshots.usage_against_limit, 0) = 0
            then 0
            else metric_snapshots.utilization
        end as pressure
    from metric_snapshots
    where metric_snapshots.effective_limit is not null

),

tier_limits as (

    -- each limit of the account on the next tier: the core plan's share of the effective
    -- limit replaced by the next tier's (null: the next tier does not limit the metric)
    select
        account_limits.account_id,
        account_limits.snapshot_date,
        account_limits.metric,
        account_limits.effective_limit,
        account_limits.usage_against_limit,
        account_limits.pressure,
        case
            when next_limit.plan_id is not null
            then account_limits.effective_limit
                - coalesce(
                    core_limit.limit_value
                    * case when core_limit.is_per_unit then core.core_quantity else 1 end,
                    0
                )
                + next_limit.limit_value
                * case when next_limit.is_per_unit then core.core_quantity else 1 end
        end as tier_limit
    from account_limits
    inner join core
        on core.account_id = account_limits.account_id
        and core.snapshot_date = account_limits.snapshot_date
    inner join next_tiers
        on next_tiers.account_id = account_limits.account_id
        and next_tiers.snapshot_date = account_limits.snapshot_date
    left join plan_limits as core_limit
        on core_limit.plan_id = core.core_plan_id
        and core_limit.metric = account_limits.metric
    left join plan_limits as next_limit
        on next_limit.plan_id = next_tiers.next_tier_plan_id
        and next_limit.metric = account_limits.metric

),

ranked_pressure as (

    select
        account_id,
        snapshot_date,
        metric,
        effective_limit,
        usage_against_limit,
        row_number() over (
            partition by account_id, snapshot_date
            order by pressure desc, metric asc
        ) as pressure_rank
    from account_limits
    where pressure >= {{ threshold }}

),

pressed as (

    -- the limit the account presses hardest, at or above the threshold (ties: metric name)
    select
        account_id,
        snapshot_date,
        metric,
        effective_limit,
        usage_against_limit
    from ranked_pressure
    where pressure_rank = 1

),

unit_counts as (

    -- more units of a per-seat core plan whose limit on the pressed metric is per unit
    select
        pressed.account_id,
        pressed.snapshot_date,
        pressed.metric,
        pressed.effective_limit,
        core_limit.limit_value as unit_limit,
        core.core_unit_price,
        {{ units_to_relieve(
            'pressed.usage_against_limit', 'pressed.effective_limit', 'core_limit.limit_value',
            threshold
        ) }} as units
    from pressed
    inner join core
        on core.account_id = pressed.account_id
        and core.snapshot_date = pressed.snapshot_date
    inner join plan_limits as core_limit
        on core_limit.plan_id = core.core_plan_id
        and core_limit.metric = pressed.metric
        and core_limit.is_per_unit
        and core_limit.limit_value > 0
    where core.core_pricing_model = 'per_seat'

),

unit_steps as (

    select
        account_id,
        snapshot_date,
        'units' as offer_kind,
        1 as kind_order,
        cast(null as {{ dbt.type_string() }}) as plan_id,
        cast(null as {{ dbt.type_string() }}) as plan_name,
        units,
        units * core_unit_price as offer_mrr,
        metric,
        effective_limit as limit_from,
        effective_limit + units * unit_limit as limit_to
    from unit_counts

),

addon_limits as (

    -- add-on plans and the limit each raises (per pack when per unit)
    select
        plans.plan_id,
        plans.product_id,
        plans.plan_name,
        plans.tier_rank,
        plans.currency,
        plans.billing_period_months,
        plans.list_price,
        plans.pricing_model,
        plan_limits.metric,
        plan_limits.limit_value as pack_limit,
        plan_limits.is_per_unit
    from plans
    inner join plan_limits
        on plan_limits.plan_id = plans.plan_id
    where plans.product_family = 'addon'
        and plan_limits.limit_value > 0

),

held_addons as (

    select distinct
        snapshot_date,
        account_id,
        product_id,
        plan_id
    from holdings
    where product_family = 'addon'

),

new_addon_options as (

    -- add-on products the account lacks that raise the pressed limit: the plan each would
    -- be bought on at the account's billing period
    select
        pressed.account_id,
        pressed.snapshot_date,
        addon_limits.plan_id,
        addon_limits.pack_limit,
        addon_limits.is_per_unit,
        row_number() over (
            partition by pressed.account_id, pressed.snapshot_date, addon_limits.product_id
            order by {{ plan_preference(
                'addon_limits', 'core.core_currency', 'core.core_billing_period_months'
            ) }}
        ) as preference
    from pressed
    inner join core
        on core.account_id = pressed.account_id
        and core.snapshot_date = pressed.snapshot_date
    inner join addon_limits
        on addon_limits.metric = pressed.metric
        and {{ billing_period_matches(
            'addon_limits.billing_period_months', 'core.core_billing_period_months'
        ) }}
    where
        not exists (
            select 1
            from held_addons
            where held_addons.snapshot_date = pressed.snapshot_date
                and held_addons.account_id = pressed.account_id
                and held_addons.product_id = addon_limits.product_id
        )

),

addon_options as (

    -- new add-ons, and more packs of a held add-on plan whose limit is per pack
    select
        account_id,
        snapshot_date,
        plan_id,
        pack_limit,
        is_per_unit
    from new_addon_options
    where preference = 1

    union all

    select
        pressed.account_id,
        pressed.snapshot_date,
        addon_limits.plan_id,
        addon_limits.pack_limit,
        addon_limits.is_per_unit
    from pressed
    inner join held_addons
        on held_addons.snapshot_date = pressed.snapshot_date
        and held_addons.account_id = pressed.account_id
    inner join addon_limits
        on addon_limits.plan_id = held_addons.plan_id
        and addon_limits.metric = pressed.metric
        and addon_limits.is_per_unit

),

addon_counts as (

    -- packs needed: per pack as for units; a plan whose limit is not per pack is bought once
    -- and counts only when that is enough
    select
        pressed.account_id,
        pressed.snapshot_date,
        pressed.metric,
        pressed.effective_limit,
        addon_options.plan_id,
        addon_options.pack_limit,
        case
            when addon_options.is_per_unit
            then {{ units_to_relieve(
                'pressed.usage_against_limit', 'pressed.effective_limit',
                'addon_options.pack_limit', threshold
            ) }}
            else 1
        end as units
    from pressed
    inner join addon_options
        on addon_options.account_id = pressed.account_id
        and addon_options.snapshot_date = pressed.snapshot_date
    where
        addon_options.is_per_unit
        or pressed.usage_against_limit
        < {{ threshold }} * (pressed.effective_limit + addon_options.pack_limit)

),

addon_steps as (

    select
        addon_counts.account_id,
        addon_counts.snapshot_date,
        'addon' as offer_kind,
        2 as kind_order,
        addon_counts.plan_id,
        plans.plan_name,
        addon_counts.units,
        {{ plan_mrr('plans.pricing_model', 'prices.list_price', 'addon_counts.units') }}
            as offer_mrr,
        addon_counts.metric,
        addon_counts.effective_limit as limit_from,
        addon_counts.effective_limit + addon_counts.units * addon_counts.pack_limit as limit_to
    from addon_counts
    inner join plans
        on plans.plan_id = addon_counts.plan_id
    inner join plan_prices as prices
        on prices.plan_id = addon_counts.plan_id
        and prices.snapshot_date = addon_counts.snapshot_date

),

tier_steps as (

    -- the next tier, when it brings the pressed limit under the threshold (or lifts it)
    select
        pressed.account_id,
        pressed.snapshot_date,
        'tier' as offer_kind,
        3 as kind_order,
        next_tiers.next_tier_plan_id as plan_id,
        next_tiers.next_tier_plan_name as plan_name,
        cast(null as integer) as units,
        next_tiers.tier_mrr as offer_mrr,
        pressed.metric,
        pressed.effective_limit as limit_from,
        tier_limits.tier_limit as limit_to
    from pressed
    inner join next_tiers
        on next_tiers.account_id = pressed.account_id
        and next_tiers.snapshot_date = pressed.snapshot_date
    inner join tier_limits
        on tier_limits.account_id = pressed.account_id
        and tier_limits.snapshot_date = pressed.snapshot_date
        and tier_limits.metric = pressed.metric
    where
        tier_limits.tier_limit is null
        or pressed.usage_against_limit < {{ threshold }} * tier_limits.tier_limit

),

tier_shown_limits as (

    -- what the next tier changes for the account: of the limits it raises, the one the
    -- account presses hardest (ties: metric name)
    select
        account_id,
        snapshot_date,
        metric,
        effective_limit as limit_from,
        tier_limit as limit_to,
        row_number() over (
            partition by account_id, snapshot_date
            order by pressure desc nulls last, metric asc
        ) as shown_rank
    from tier_limits
    where tier_limit is null or tier_limit > effective_limit

),

next_tier_steps as (

    -- the next tier as the upsell when no step relieves a pressed limit
    select
        next_tiers.account_id,
        next_tiers.snapshot_date,
        'tier' as offer_kind,
        4 as kind_order,
        next_tiers.next_tier_plan_id as plan_id,
        next_tiers.next_tier_plan_name as plan_name,
        cast(null as integer) as units,
        next_tiers.tier_mrr as offer_mrr,
        tier_shown_limits.metric,
        tier_shown_limits.limit_from,
        tier_shown_limits.limit_to
    from next_tiers
    left join tier_shown_limits
        on tier_shown_limits.account_id = next_tiers.account_id
        and tier_shown_limits.snapshot_date = next_tiers.snapshot_date
        and tier_shown_limits.shown_rank = 1

),

upsell_steps as (

    select * from unit_steps
    union all
    select * from addon_steps
    union all
    select * from tier_steps
    union all
    select * from next_tier_steps

),

ranked_upsells as (

    -- relieving steps first, cheapest first (then units, add-on, tier; then plan_id), then
    -- the next tier; only steps that add MRR
    select
        *,
        row_number() over (
            partition by account_id, snapshot_date
            order by kind_order = 4, offer_mrr, kind_order, plan_id
        ) as upsell_rank
    from upsell_steps
    where offer_mrr > 0

),

upsells as (

    select * from ranked_upsells
    where upsell_rank = 1

),

upsell_products as (

    -- the add-on product an upsell offers: not offered again as a cross-sell
    select
        upsells.account_id,
        upsells.snapshot_date,
        plans.product_id
    from upsells
    inner join plans
        on plans.plan_id = upsells.plan_id
    where upsells.offer_kind = 'addon'

),

cross_sell_choices as (

    select
        cross_sell_candidates.*,
        row_number() over (
            partition by cross_sell_candidates.account_id, cross_sell_candidates.snapshot_date
            order by cross_sell_candidates.candidate_rank
        ) as choice
    from cross_sell_candidates
    left join upsell_products
        on upsell_products.account_id = cross_sell_candidates.account_id
        and upsell_products.snapshot_date = cross_sell_candidates.snapshot_date
        and upsell_products.product_id = cross_sell_candidates.product_id
    where upsell_products.product_id is null

),

cross_sells as (

    select * from cross_sell_choices
    where choice = 1

),

final as (

    select
        spine.account_id,
        spine.snapshot_date,
        next_tiers.next_tier_plan_id,
        next_tiers.next_tier_plan_name,
        upsells.offer_kind as upsell_offer_kind,
        upsells.plan_id as upsell_plan_id,
        upsells.plan_name as upsell_plan_name,
        cast(upsells.units as integer) as upsell_units,
        cast(upsells.offer_mrr as {{ type_double() }}) as upsell_offer_mrr,
        upsells.metric as upsell_limit_metric,
        cast(upsells.limit_from as {{ type_double() }}) as upsell_limit_from,
        cast(upsells.limit_to as {{ type_double() }}) as upsell_limit_to,
        cross_sells.product_id as cross_sell_product_id,
        cross_sells.product_name as cross_sell_product_name,
        cross_sells.plan_id as cross_sell_plan_id,
        cross_sells.plan_name as cross_sell_plan_name,
        cross_sells.units as cross_sell_units,
        cross_sells.offer_mrr as cross_sell_offer_mrr,
        {{ reporting_currency() }} as reporting_currency
    from spine
    left join next_tiers
        on next_tiers.account_id = spine.account_id
        and next_tiers.snapshot_date = spine.snapshot_date
    left join upsells
        on upsells.account_id = spine.account_id
        and upsells.snapshot_date = spine.snapshot_date
    left join cross_sells
        on cross_sells.account_id = spine.account_id
        and cross_sells.snapshot_date = spine.snapshot_date

)

select * from final
