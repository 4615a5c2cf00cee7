{#-
    Every repeat purchase of each account known at the end of as_of: what makes an account a
    repeater (DECISIONLOG.md, "Health and loyalty"). One row per purchase:
      renewal        a subscription still held when a renewal period ends, at started_at +
                     k x the period (k >= 1): the term, or loyalty_renewal_min_months when the
                     term is shorter (a monthly plan counts one renewal a year, not one a month);
                     not held at that instant (cancelled at or before it) = not renewed
      upsell, cross_sell   an expansion that added MRR (int_expansion_events_classified)
      reactivation   the account bought again after a churn
    The first purchase (movement `new`) is not a repeat. int_account_health_snapshotted counts
    the rows with purchased_at before each snapshot's end.
-#}
{%- set renewal_months = 'greatest(coalesce(term_months, 1), '
    ~ var('loyalty_renewal_min_months') ~ ')' %}
{%- set renewed_at = dbt.dateadd(
    'month', 'renewal_numbers.n * subscriptions.renewal_months', 'subscriptions.started_at'
) %}
with

pipeline_dates as (

    select * from {{ ref('int_pipeline_dates_resolved') }}

),

versions as (

    select * from {{ ref('int_subscription_versions_ranged') }}

),

events as (

    select * from {{ ref('int_expansion_events_classified') }}

),

subscriptions as (

    select distinct
        subscription_id,
        account_id,
        product_id,
        started_at,
        canceled_at,
        {{ renewal_months }} as renewal_months
    from versions

),

renewal_candidates as (

    -- every renewal instant up to as_of (datediff counts month boundaries: an upper bound)
    select
        subscriptions.account_id,
        subscriptions.subscription_id,
        subscriptions.product_id,
        subscriptions.canceled_at,
        pipeline_dates.as_of_end_at,
        renewal_numbers.n as renewal_number,
        cast({{ renewed_at }} as timestamp) as purchased_at
    from subscriptions
    cross join pipeline_dates
    cross join lateral {{ integer_series(
        1,
        'floor(' ~ dbt.datediff('subscriptions.started_at', 'pipeline_dates.as_of_end_at', 'month')
        ~ ' / cast(subscriptions.renewal_months as ' ~ type_double() ~ '))',
        'renewal_numbers',
        'n'
    ) }}

),

renewals as (

    select
        account_id,
        {{ dbt.concat([
            'subscription_id', "'-renewal-'", 'cast(renewal_number as ' ~ dbt.type_string() ~ ')'
        ]) }} as purchase_id,
        'renewal' as purchase_type,
        product_id,
        purchased_at
    from renewal_candidates
    where purchased_at < as_of_end_at
        and purchased_at < coalesce(canceled_at, {{ end_of_time() }})

),

event_purchases as (

    select
        events.account_id,
        events.event_id as purchase_id,
        events.movement_type as purchase_type,
        events.product_id,
        events.event_at as purchased_at
    from events
    cross join pipeline_dates
    where (events.is_expansion or events.movement_type = 'reactivation')
        and events.event_at < pipeline_dates.as_of_end_at

),

purchases as (

    select * from renewals
    union all
    select * from event_purchases

)

select * from purchases
