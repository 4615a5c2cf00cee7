{#-
    One row: the dates every point-in-time model reads.
    - as_of_date: the `as_of` var, or the latest usage_date when the var is null.
    - as_of_end_at: as_of_date + 1 day as a timestamp. An event is known at as_of when
      its timestamp is strictly before this instant (the whole as_of day counts).
    - data_end_date: the latest usage_date in the warehouse (the end of the data window).
    - label_cutoff_date: the last day labels may look at: the earlier of as_of and the end
      of the data, so re-running an old as_of never reads later events.
-#}
with

usage_daily as (

    select usage_date from {{ ref('stg_usage__usage_daily') }}

),

data_window as (

    select
        min(usage_date) as data_start_date,
        max(usage_date) as data_end_date
    from usage_daily

),

resolved as (

    select
        coalesce({{ as_of_literal() }}, data_end_date) as as_of_date,
        data_start_date,
        data_end_date
    from data_window

),

final as (

    select
        as_of_date,
        cast({{ dbt.dateadd('day', 1, 'as_of_date') }} as timestamp) as as_of_end_at,
        data_start_date,
        data_end_date,
        least(as_of_date, coalesce(data_end_date, as_of_date)) as label_cutoff_date,
        cast({{ dbt.dateadd(
            'day', 1, 'least(as_of_date, coalesce(data_end_date, as_of_date))'
        ) }} as timestamp) as label_cutoff_end_at,
        cast({{ var('label_horizon_days') }} as integer) as label_horizon_days
    from resolved

)

select * from final
