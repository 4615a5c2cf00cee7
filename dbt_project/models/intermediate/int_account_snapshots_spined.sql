{#-
    One row per account per snapshot date on which the account existed (created on or before
    the snapshot date), with the instants that bound what may be used:
      snapshot_end_at  snapshot_date + 1 day: features use events strictly before it.
      label_start_at   = snapshot_end_at: the label window excludes the snapshot day itself.
      label_end_at     snapshot_date + horizon + 1 day, but never after the end of the label
                       cutoff date (as_of or the end of the data): labels use events in
                       [label_start_at, label_end_at), i.e. days (snapshot_date, snapshot_date + horizon].
      is_label_complete the whole window lies on or before the label cutoff date.
-#}
with

accounts as (

    select * from {{ ref('stg_crm__accounts') }}

),

snapshot_dates as (

    select * from {{ ref('int_snapshot_dates_selected') }}

),

pipeline_dates as (

    select * from {{ ref('int_pipeline_dates_resolved') }}

),

final as (

    select
        accounts.account_id,
        snapshot_dates.snapshot_date,
        snapshot_dates.is_scoring_snapshot,
        cast({{ dbt.dateadd('day', 1, 'snapshot_dates.snapshot_date') }} as timestamp)
            as snapshot_end_at,
        cast({{ dbt.dateadd('day', 1, 'snapshot_dates.snapshot_date') }} as timestamp)
            as label_start_at,
        least(
            cast({{ dbt.dateadd(
                'day', 'pipeline_dates.label_horizon_days + 1', 'snapshot_dates.snapshot_date'
            ) }} as timestamp),
            pipeline_dates.label_cutoff_end_at
        ) as label_end_at,
        (
            cast({{ dbt.dateadd(
                'day', 'pipeline_dates.label_horizon_days', 'snapshot_dates.snapshot_date'
            ) }} as date)
            <= pipeline_dates.label_cutoff_date
        ) as is_label_complete
    from accounts
    inner join snapshot_dates
        on cast(accounts.created_at as date) <= snapshot_dates.snapshot_date
    cross join pipeline_dates

)

select * from final
