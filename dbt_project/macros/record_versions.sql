{#-
    The change index of one source, the whole select of its `stg_<source>__record_versions`
    model: one row per raw row of each table in `tables` (every loaded version of every
    record, not only the latest), with
      table_name         the raw table
      record_id          the record's key, as its staging model trims it
      affects_from_date  the first snapshot date this version of the record can change: the
                         date of `affects_from` (a SQL expression over the raw columns);
                         1900-01-01 (every date) when it is null or not given
      _loaded_at         when this version was loaded
    `tables` is a list of {'name': raw table, 'key': key column, 'affects_from': expression}.
    Used by macros/snapshot_incremental.sql to find the snapshot dates a load can change.
-#}
{% macro record_versions(source_name, tables) -%}
with

unioned as (
{% for table in tables %}
    select
        '{{ table.name }}' as table_name,
        trim({{ table.key }}) as record_id,
        cast({{ table.get('affects_from') or 'null' }} as date) as affects_from_date,
        _loaded_at
    from {{ source(source_name, table.name) }}
{%- if not loop.last %}

    union all
{% endif %}
{%- endfor %}

)

select
    table_name,
    record_id,
    coalesce(affects_from_date, cast('1900-01-01' as date)) as affects_from_date,
    _loaded_at
from unioned
{%- endmacro %}
