-- int_pipeline_dates_resolved must hold exactly one row (every model cross-joins it), with an
-- as_of date whenever there is usage data or an `as_of` var. An empty warehouse (a fresh clone
-- after `expansion init`, before the first load) resolves no date and builds empty marts.
select
    count(*) as n_rows,
    count(as_of_date) as n_as_of_dates
from {{ ref('int_pipeline_dates_resolved') }}
having
    count(*) != 1
    or (count(as_of_date) != 1 and count(data_end_date) = 1)
