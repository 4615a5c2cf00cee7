-- int_pipeline_dates must hold exactly one row with an as_of date: every model cross-joins it.
select count(*) as n_rows
from {{ ref('int_pipeline_dates') }}
having count(*) != 1 or count(as_of_date) != 1
