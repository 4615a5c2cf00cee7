{#-
    The ON condition of an event table's range join to the snapshot dates (`snapshots`, a
    relation with snapshot_end_at = snapshot_date + 1 day), one of:
      open at the snapshot    `ended_at` given: started (`started_at`) before the end of the
                              snapshot day and not ended by then (null = not ended; a list of
                              columns = the earliest of them), so an item closed after the day
                              is still open on it;
      in the last N days      `days` given: `started_at` in (snapshot_date - days,
                              snapshot_date], i.e. [snapshot_end_at - days, snapshot_end_at).
    A range join meets each event with only the (few) snapshot dates it counts for; group the
    result by account and snapshot date. Usage:
        inner join snapshots
            on {{ snapshot_range_join('support_tickets.opened_at', ended_at='support_tickets.closed_at') }}
-#}
{% macro snapshot_range_join(started_at, ended_at=none, days=none, snapshots='snapshots') -%}
    {%- set end_at = snapshots ~ '.snapshot_end_at' -%}
    {%- if (ended_at is none) == (days is none) -%}
        {{ exceptions.raise_compiler_error('snapshot_range_join: give either ended_at or days') }}
    {%- endif -%}
    {#- continuation lines indented for the usual `        on {{ ... }}` -#}
    {{ started_at }} < {{ end_at }}
    {%- if days is not none %}
        and {{ started_at }} >= {{ dbt.dateadd('day', -days, end_at) | trim }}
    {%- elif ended_at is string %}
        and coalesce({{ ended_at }}, {{ end_of_time() }}) >= {{ end_at }}
    {%- else %}
        and least(
        {%- for column in ended_at %}
            coalesce({{ column }}, {{ end_of_time() }}){{ ',' if not loop.last }}
        {%- endfor %}
        ) >= {{ end_at }}
    {%- endif -%}
{%- endmacro %}
