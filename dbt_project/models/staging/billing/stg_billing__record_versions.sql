{#-
    Change index of the billing tables the snapshot models read: one row per raw row (every
    loaded version of every record), with table_name, record_id (the key as its staging model
    trims it), affects_from_date (the first snapshot date this version can change) and
    _loaded_at. See stg_crm__record_versions for how the incremental snapshot models use it.

    Reference data changes every snapshot date (affects_from_date 1900-01-01): a customer
    maps all its subscriptions and invoices to an account, and plans and products give
    every subscription version its tier, family and limits.
-#}
with

customers as (

    select
        'customers' as table_name,
        trim(customer_id) as record_id,
        cast(null as date) as affects_from_date,
        _loaded_at
    from {{ source('billing', 'customers') }}

),

plans as (

    select
        'plans' as table_name,
        trim(plan_id) as record_id,
        cast(null as date) as affects_from_date,
        _loaded_at
    from {{ source('billing', 'plans') }}

),

products as (

    select
        'products' as table_name,
        trim(product_id) as record_id,
        cast(null as date) as affects_from_date,
        _loaded_at
    from {{ source('billing', 'products') }}

),

subscriptions as (

    select
        'subscriptions' as table_name,
        trim(subscription_id) as record_id,
        cast(least(started_at, canceled_at) as date) as affects_from_date,
        _loaded_at
    from {{ source('billing', 'subscriptions') }}

),

subscription_changes as (

    select
        'subscription_changes' as table_name,
        trim(change_id) as record_id,
        -- a version also ends the one before it, at the same instant
        cast(effective_at as date) as affects_from_date,
        _loaded_at
    from {{ source('billing', 'subscription_changes') }}

),

invoices as (

    select
        'invoices' as table_name,
        trim(invoice_id) as record_id,
        -- a void invoice stops counting at its last update, after its issue date
        cast(least(issued_at, due_at, paid_at) as date) as affects_from_date,
        _loaded_at
    from {{ source('billing', 'invoices') }}

),

unioned as (

    select * from customers
    union all
    select * from plans
    union all
    select * from products
    union all
    select * from subscriptions
    union all
    select * from subscription_changes
    union all
    select * from invoices

),

final as (

    select
        table_name,
        record_id,
        coalesce(affects_from_date, cast('1900-01-01' as date)) as affects_from_date,
        _loaded_at
    from unioned

)

select * from final
