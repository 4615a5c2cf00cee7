{#-
    The first renewal strictly after `as_of_date` of a contract that started on `started_date`
    and renews every `term_months`: started_date + k * term_months (k >= 1), computed from
    the start date each time so month-end starts do not drift (Jan 31 -> Feb 28 -> Mar 31).

    datediff('month') counts calendar-month boundaries, so started_date + k0 * term (k0 =
    floor(months / term)) falls in as_of's month or before it; if it is not after as_of the
    answer is the next term. Null when term_months is null or not positive.
-#}
{% macro next_renewal_date(started_date, term_months, as_of_date) -%}
    {%- set started = 'cast(' ~ started_date ~ ' as date)' -%}
    {%- set as_of = 'cast(' ~ as_of_date ~ ' as date)' -%}
    {%- set k0 = 'greatest(1, floor(' ~ dbt.datediff(started, as_of, 'month') ~ ' / ' ~ term_months ~ '))' -%}
    {%- set candidate = 'cast(' ~ dbt.dateadd('month', 'cast(' ~ k0 ~ ' * ' ~ term_months ~ ' as integer)', started) ~ ' as date)' -%}
    {%- set following = 'cast(' ~ dbt.dateadd('month', 'cast((' ~ k0 ~ ' + 1) * ' ~ term_months ~ ' as integer)', started) ~ ' as date)' -%}
    case
        when {{ term_months }} is null or {{ term_months }} <= 0 then null
        when {{ candidate }} > {{ as_of }} then {{ candidate }}
        else {{ following }}
    end
{%- endmacro %}
