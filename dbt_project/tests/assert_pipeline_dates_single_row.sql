-- int_pipeline_dates_resolved must hold exactly one row with an as_of date: every model
-- cross-joins it.
select count(*) as n_rows
from {{ ref('int_pipeline_dates_resolved') }}
having count(*) != 1 or count(as_of_date) != 1
