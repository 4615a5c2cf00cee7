{#-
    The declared usage metrics (config/business.yml as the loader wrote it), one row each.
    The loader writes validated values (models/business.py), so nothing is cleaned here.
-#}
with

source as (

    select * from {{ source('config', 'usage_metrics') }}

),

renamed as (

    select
        metric,
        aggregation,
        limit_period,
        label,
        unit,
        description

    from source

)

select * from renamed
