{#-
    How a plan of the catalogue is chosen for a customer (DECISIONLOG.md, "Offers"): the tier
    ladder (int_plans_laddered, account_offers), the add-on and the entry plan an offer names
    (account_offers), and what a plan costs a month at the catalogue's list price.
-#}


{#- A plan sold on `plan_period` (billing_period_months; null = sold on any period) can be
    held at the billing period `period` (null = any). SQL expressions. -#}
{% macro billing_period_matches(plan_period, period) -%}
    ({{ plan_period }} is null or {{ period }} is null or {{ plan_period }} = {{ period }})
{%- endmacro %}


{#- The ORDER BY terms that choose one plan among candidates `plan` (an alias of a table with
    the plans' columns) for a customer whose plan is in `currency` and who is billed every
    `period` months: the lowest tier, then a plan in that currency, then one sold on exactly
    that period, then the lowest list price, then plan_id. -#}
{% macro plan_preference(plan, currency, period) -%}
    {{ plan }}.tier_rank,
    case when {{ plan }}.currency = {{ currency }} then 0 else 1 end,
    case when {{ plan }}.billing_period_months is not distinct from {{ period }} then 0 else 1 end,
    {{ plan }}.list_price nulls last,
    {{ plan }}.plan_id
{%- endmacro %}


{#- The monthly price of `quantity` units of a plan at its list price, by its pricing model:
    per_seat price x quantity; flat the plan's price; usage the committed base. -#}
{% macro plan_mrr(pricing_model, list_price, quantity) -%}
    case
        when {{ pricing_model }} = 'per_seat' then {{ list_price }} * {{ quantity }}
        else {{ list_price }}
    end
{%- endmacro %}


{#- How many units of `step` (the limit each unit adds, > 0) bring `usage` under `threshold`
    of `limit` + units x step: the smallest whole number with usage < threshold x (limit +
    units x step), at least 1. -#}
{% macro units_to_relieve(usage, limit, step, threshold) -%}
    greatest(cast(floor(({{ usage }} / {{ threshold }} - {{ limit }}) / {{ step }}) as integer) + 1, 1)
{%- endmacro %}
