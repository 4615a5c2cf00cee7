-- Point-in-time guard: no snapshot after as_of, no label window reaching past the label
-- cutoff (as_of / end of data), and the scoring snapshot never claims a complete label.
with

pipeline_dates as (

    select * from {{ ref('int_pipeline_dates_resolved') }}

),

spine as (

    select * from {{ ref('int_account_snapshots_spined') }}

),

snapshots as (

    select * from {{ ref('account_snapshots') }}

)

select
    spine.account_id,
    spine.snapshot_date,
    'label window passes the cutoff' as problem
from spine
cross join pipeline_dates
where spine.label_end_at > pipeline_dates.label_cutoff_end_at
    or (
        spine.is_label_complete
        and cast({{ dbt.dateadd(
            'day', 'pipeline_dates.label_horizon_days', 'spine.snapshot_date'
        ) }} as date) > pipeline_dates.label_cutoff_date
    )

union all

select
    snapshots.account_id,
    snapshots.snapshot_date,
    'snapshot after as_of or complete label at as_of' as problem
from snapshots
cross join pipeline_dates
where snapshots.snapshot_date > pipeline_dates.as_of_date
    or (snapshots.snapshot_date = pipeline_dates.as_of_date and snapshots.is_label_complete)
