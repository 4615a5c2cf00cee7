-- accounts describes the as_of state: it must agree with the scoring snapshot of account_snapshots.
with

accounts as (

    select * from {{ ref('accounts') }}

),

snapshots as (

    select * from {{ ref('account_snapshots') }}
    where
        snapshot_date = (
            select pipeline_dates.as_of_date
            from {{ ref('int_pipeline_dates_resolved') }} as pipeline_dates
        )

)

select accounts.account_id
from accounts
full outer join snapshots
    on snapshots.account_id = accounts.account_id
where accounts.account_id is null
    or snapshots.account_id is null
    or abs(accounts.current_mrr - snapshots.mrr) >= 0.01
    or (accounts.lifecycle_status = 'active') != snapshots.is_active
    or accounts.products_held != snapshots.products_held
