{#-
    Snapshot dates in batches: a snapshotted model (macros/snapshot_incremental.sql) whose
    build would compute more rows than fit in memory at once computes its dates a batch at a
    time, in the same build and transaction.

    Why: the rows of each snapshot date come from one aggregate over the inputs, and its state
    grows with accounts x dates (x metrics for usage). At 1M accounts, three snapshot dates of
    int_account_usage_snapshotted in one query spill 11 GB beside a 9.4 GiB memory limit
    alone, and ran out of 38 GB of spill next to another model; one or two dates at a time need
    no spill and take the same time (bench/README.md).

    How: snapshot_rebuild_plan() splits the dates it recomputes into batches of at most
    `snapshot_batch_rows` rows (spine rows x rows_per_account, estimated from the spine), of
    consecutive dates. The model's SQL computes the first batch: every filter on the plan's
    dates (snapshot_dates_filter, snapshot_lookback_filter) writes that batch's dates as
    marked literals. The post-hook snapshot_batches_post_hook() then inserts each other batch:
    the same compiled SQL with the marked literals set to that batch's dates. Every date is
    computed by the same SQL, so the rows equal an unbatched build's
    (tests/dbt/test_incremental_snapshots.py); the pre-hook has already deleted every date of
    the plan (its `rebuild snapshot dates` marker lists them all).
-#}


{#-
    The most rows one query of a snapshotted model may compute (var snapshot_batch_rows): a
    number, or 'auto' (the adapter's estimate from its memory; none: no batches).
-#}
{% macro snapshot_batch_rows() -%}
    {%- set configured = var('snapshot_batch_rows', 'auto') -%}
    {%- if configured is none or (configured | string | lower) == 'auto' -%}
        {{ return(adapter.dispatch('snapshot_batch_rows_auto')()) }}
    {%- endif -%}
    {%- if not (configured | string).isdigit() or (configured | int) < 1 -%}
        {{ exceptions.raise_compiler_error(
            "var snapshot_batch_rows: expected 'auto' or a whole number of rows above 0, got '" ~ configured ~ "'"
        ) }}
    {%- endif -%}
    {{ return(configured | int) }}
{%- endmacro %}

{#- No estimate: the database spills as it needs (PostgreSQL's work_mem). -#}
{% macro default__snapshot_batch_rows_auto() -%}
    {{ return(none) }}
{%- endmacro %}

{#-
    DuckDB: its memory_limit / 2 KiB. Measured at 1M accounts (4 usage metrics) on a 9.4 GiB
    limit: 7.5M rows of int_account_usage_snapshotted in one query need no spill alone, 10.4M
    spill 11 GB; the other thread builds a model at the same time, hence the margin.
-#}
{% macro duckdb__snapshot_batch_rows_auto() -%}
    {%- set setting = run_query("select current_setting('memory_limit')").columns[0].values()[0] | string -%}
    {%- set parts = (setting | trim).split(' ') -%}
    {%- set units = {
        'bytes': 1, 'KiB': 1024, 'MiB': 1024 ** 2, 'GiB': 1024 ** 3, 'TiB': 1024 ** 4,
        'KB': 1000, 'MB': 1000 ** 2, 'GB': 1000 ** 3, 'TB': 1000 ** 4,
    } -%}
    {%- if parts | length != 2 or parts[1] not in units -%}
        {{ log("snapshot batches: DuckDB's memory_limit '" ~ setting ~ "' is not understood; computing every date at once", info=true) }}
        {{ return(none) }}
    {%- endif -%}
    {{ return([(parts[0] | float) * units[parts[1]] / 2048, 1] | max | int) }}
{%- endmacro %}


{#-
    The dates of a plan in batches: a list of lists of 'YYYY-MM-DD' strings, consecutive
    dates, each batch at most `budget` rows (spine rows per date x rows_per_account; a date
    larger than the budget is a batch of its own), as even as that allows. `dates` none means
    every date of the spine. One batch (or none) when everything fits.
-#}
{% macro snapshot_batches(spine, dates, rows_per_account, budget) -%}
    {%- if budget is none or (dates is not none and dates | length < 2) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set sizes_sql -%}
        select cast(snapshot_date as {{ dbt.type_string() }}), count(*)
        from {{ spine }}
        {%- if dates is not none %}
        where snapshot_date in {{ date_literals(dates) }}
        {%- endif %}
        group by snapshot_date
        order by snapshot_date
    {%- endset -%}
    {%- set rows = run_query(sizes_sql).rows -%}
    {%- set total = (rows | sum(attribute=1)) * rows_per_account -%}
    {%- if total <= budget -%}
        {{ return(none) }}
    {%- endif -%}
    {#- as many batches as the budget needs, filled to an even share each -#}
    {%- set share = total / ((total / budget) | round(0, 'ceil')) -%}
    {%- set batches = [[]] -%}
    {%- set filled = namespace(rows=0) -%}
    {%- for row in rows -%}
        {%- set size = row[1] * rows_per_account -%}
        {%- if batches[-1] and (filled.rows >= share or filled.rows + size > budget) -%}
            {%- do batches.append([]) -%}
            {%- set filled.rows = 0 -%}
        {%- endif -%}
        {%- do batches[-1].append(row[0] | string) -%}
        {%- set filled.rows = filled.rows + size -%}
    {%- endfor -%}
    {{ return(batches if batches | length > 1 else none) }}
{%- endmacro %}


{#-
    The rows per account and snapshot date of a model keyed on (account, date, metric): the
    usage metrics reported on the latest usage day (an estimate, for the batch size only).
-#}
{% macro snapshot_usage_metric_count(usage) -%}
    {%- set count_sql -%}
        select count(distinct metric) from {{ usage }}
        where usage_date = (select max(usage_date) from {{ usage }})
    {%- endset -%}
    {{ return([run_query(count_sql).columns[0].values()[0] or 1, 1] | max) }}
{%- endmacro %}


{#-
    The marked literals of a batch's dates in a model's SQL; snapshot_batches_post_hook()
    finds them by these comments and writes another batch's dates in their place.
      snapshot_batch_list   (cast('d1' as date), ...)  every date of the batch
      snapshot_batch_first  cast('d' as date)  the batch's first date less `days_before` days
      snapshot_batch_last   cast('d' as date)  the batch's last date
-#}
{% macro snapshot_batch_list(dates) -%}
    /* batch dates */{{ date_literals(dates) }}
{%- endmacro %}

{% macro snapshot_batch_first(dates, days_before=0) -%}
    {%- set first = modules.datetime.date.fromisoformat(dates[0]) - modules.datetime.timedelta(days=days_before | int) -%}
    /* batch first -{{ days_before | int }} */cast('{{ first }}' as date)
{%- endmacro %}

{% macro snapshot_batch_last(dates) -%}
    /* batch last */cast('{{ dates[-1] }}' as date)
{%- endmacro %}

{#- A model's compiled SQL with its marked literals set to the dates of `batch`. -#}
{% macro snapshot_batch_sql(code, batch) -%}
    {%- set re = modules.re -%}
    {%- set date_literal = "cast\\('\\d{4}-\\d{2}-\\d{2}' as date\\)" -%}
    {%- set code = re.sub(
        "/\\* batch dates \\*/\\((?:" ~ date_literal ~ "(?:, )?)+\\)",
        snapshot_batch_list(batch) | trim, code
    ) -%}
    {%- set code = re.sub("/\\* batch last \\*/" ~ date_literal, snapshot_batch_last(batch) | trim, code) -%}
    {%- for days_before in re.findall("/\\* batch first -(\\d+) \\*/", code) | unique -%}
        {%- set code = re.sub(
            "/\\* batch first -" ~ days_before ~ " \\*/" ~ date_literal,
            snapshot_batch_first(batch, days_before) | trim, code
        ) -%}
    {%- endfor -%}
    {{ return(code) }}
{%- endmacro %}


{#-
    Post-hook of every snapshotted model: the batches after the first (the `rebuild batches`
    marker of the compiled SQL: dates joined by ',', batches by ';'), each inserted into the
    table by the model's own SQL with that batch's dates. Runs its statements while rendering,
    in the build's transaction; renders nothing.
-#}
{% macro snapshot_batches_post_hook() -%}
    {%- if execute -%}
        {%- set marker = compiled_rebuild_marker('batches') -%}
        {%- if marker -%}
            {%- set batches = marker.split(';') -%}
            {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='quoted') | join(', ') -%}
            {%- for batch in batches[1:] -%}
                {%- set dates = batch.split(',') -%}
                {{ log(this ~ ': snapshot dates batch ' ~ (loop.index + 1) ~ ' of ' ~ batches | length ~ ': ' ~ dates | join(', '), info=true) }}
                {%- call statement('snapshot_batch_' ~ (loop.index + 1)) -%}
                    insert into {{ this }} ({{ columns }})
                    select {{ columns }} from (
                        {{ snapshot_batch_sql(model.compiled_code, dates) }}
                    ) as batch_rows
                {%- endcall -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
