{#-
    mrr_movements must reconcile on every row:
      1. closing = opening + new + expansion + reactivation + price_change - contraction - churn
      2. expansion = upsell + cross_sell
      3. a month opens with the previous month's closing (0 when the previous month is absent,
         i.e. the account had neither MRR nor movements then)
      4. closing equals the MRR recomputed independently from the subscription versions held
         at the end of the month (or at the end of the as_of day for the as_of month)
    Amounts are doubles: differences under one cent pass. A daily build checks the months it
    recomputed (macros/get_where_subquery.sql, recomputed_rows), reading the month before the
    first of them for 3.
-#}
with

movements as (

    select * from {{ ref('mrr_movements') }}
    where {{ recomputed_rows('mrr_movements', 'month_start', months_before=1) }}

),

versions as (

    select * from {{ ref('int_subscription_versions_ranged') }}

),

pipeline_dates as (

    select * from {{ ref('int_pipeline_dates_resolved') }}

),

arithmetic as (

    select
        account_id,
        month_start,
        'closing != opening + movements' as problem
    from movements
    where
        abs(
            opening_mrr + new_mrr + expansion_mrr + reactivation_mrr
            + price_change_mrr - contraction_mrr - churn_mrr - closing_mrr
        ) >= 0.01
        or abs(expansion_mrr - upsell_mrr - cross_sell_mrr) >= 0.01

),

continuity as (

    select
        account_id,
        month_start,
        'opening != previous closing' as problem
    from (
        select
            account_id,
            month_start,
            opening_mrr,
            lag(closing_mrr) over (partition by account_id order by month_start)
                as previous_closing,
            lag(month_start) over (partition by account_id order by month_start)
                as previous_month_start
        from movements
    ) as lagged
    where
        abs(
            opening_mrr
            - case
                when
                    previous_month_start
                    = cast({{ dbt.dateadd('month', -1, 'month_start') }} as date)
                then previous_closing
                else 0
            end
        ) >= 0.01

),

month_ends as (

    select
        movements.account_id,
        movements.month_start,
        movements.closing_mrr,
        least(
            cast({{ dbt.dateadd('month', 1, 'movements.month_start') }} as timestamp),
            pipeline_dates.as_of_end_at
        ) as month_end_at
    from movements
    cross join pipeline_dates

),

recomputed as (

    select
        month_ends.account_id,
        month_ends.month_start,
        'closing != MRR of versions held at month end' as problem
    from month_ends
    left join versions
        on versions.account_id = month_ends.account_id
        and versions.valid_from < month_ends.month_end_at
        and (versions.valid_to is null or versions.valid_to >= month_ends.month_end_at)
    group by month_ends.account_id, month_ends.month_start, month_ends.closing_mrr
    having abs(coalesce(sum(versions.mrr), 0) - month_ends.closing_mrr) >= 0.01

),

problems as (

    select * from arithmetic
    union all
    select * from continuity
    union all
    select * from recomputed

)

select * from problems
where {{ recomputed_rows('mrr_movements', 'month_start') }}
