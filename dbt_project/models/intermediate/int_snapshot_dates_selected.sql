{#-
    The snapshot dates of account_snapshots: the last `snapshot_history_months` month-end
    dates on or before as_of, plus as_of itself (the scoring snapshot). One row per date.
    Month-ends before the first usage_date are left out: usage features would be missing
    there because telemetry was not collected yet, not because the account did not use the
    product, and a model trained on them would learn that artefact.
-#}
with

pipeline_dates as (

    select * from {{ ref('int_pipeline_dates_resolved') }}

),

month_ends as (

    select
        cast({{ dbt.last_day(
            dbt.dateadd('month', '-months_back.n', 'pipeline_dates.as_of_date'), 'month'
        ) }} as date) as snapshot_date
    from pipeline_dates
    cross join {{ integer_series(0, var('snapshot_history_months'), 'months_back', 'n') }}

),

in_data_window as (

    select
        month_ends.snapshot_date,
        row_number() over (order by month_ends.snapshot_date desc) as months_back
    from month_ends
    cross join pipeline_dates
    where month_ends.snapshot_date <= pipeline_dates.as_of_date
        and month_ends.snapshot_date >= coalesce(
            pipeline_dates.data_start_date, pipeline_dates.as_of_date
        )

),

recent_month_ends as (

    select snapshot_date
    from in_data_window
    where months_back <= {{ var('snapshot_history_months') }}

),

with_scoring_date as (

    select snapshot_date from recent_month_ends
    union
    select as_of_date as snapshot_date from pipeline_dates
    where as_of_date is not null

),

final as (

    select
        with_scoring_date.snapshot_date,
        (
            with_scoring_date.snapshot_date
            = cast({{ dbt.last_day('with_scoring_date.snapshot_date', 'month') }} as date)
        ) as is_month_end,
        with_scoring_date.snapshot_date = pipeline_dates.as_of_date as is_scoring_snapshot
    from with_scoring_date
    cross join pipeline_dates

)

select * from final
