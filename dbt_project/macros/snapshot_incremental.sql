{#-
    Incremental snapshot models: a model of models/intermediate/snapshotted/, keyed on
    snapshot_date, keeps the rows of the snapshot dates whose inputs did not change since its
    last build and recomputes only the others. A daily run then computes the new scoring date
    (as_of), not every month-end again. The folder's config in dbt_project.yml makes each
    model incremental (delete+insert on snapshot_date, sync_all_columns) with
    snapshot_dates_pre_hook() as pre-hook; a model then reads (see
    int_account_usage_snapshotted.sql):

        {%- set plan = snapshot_rebuild_plan() %}
        with
        spine as ({{ snapshot_spine(plan) }}),
        ... another snapshotted input: where {{ snapshot_dates_filter(plan) }}
        ... a daily input: where {{ snapshot_lookback_filter(plan, 'usage_date', 90) }}
        ... the last CTE, one row per spine row: ..., {{ snapshot_build_columns(plan) }}

    Which snapshot dates a build recomputes (`snapshot_rebuild_plan`):
      - every date, on the first build, with `--full-refresh`, when the table predates these
        columns, and when the build fingerprint changed (any model or seed file of the
        project, or a var other than as_of; see `snapshot_build_fingerprint`);
      - otherwise the dates of int_snapshot_dates_selected that the table does not hold yet
        (the new as_of), plus every date on or after the earliest date touched by rows loaded
        since the table's last build (`_inputs_loaded_at`, the newest raw `_loaded_at` it was
        built from): a usage day (stg_usage__usage_daily._loaded_at), or a CRM or billing
        record with a new version (stg_crm__record_versions, stg_billing__record_versions,
        which give the first date each version of a record can change, old and new).
    `delete+insert` on snapshot_date replaces those dates whole; the pre-hook deletes the
    dates that left the spine (int_account_snapshots_spined: older than
    snapshot_history_months, the previous as_of). The result equals a `--full-refresh` build
    (tests/dbt/test_incremental_snapshots.py).

    Not detected: rows deleted from raw other than by the loader's full refresh (which makes
    every row new), and edits of macros (they are not in dbt's graph). After either, run
    `dbt build --full-refresh`.
-#}


{#- The vars that change what the snapshot models compute (every var but as_of). -#}
{% macro snapshot_fingerprint_vars() -%}
    {{ return([
        'label_horizon_days', 'reporting_currency', 'snapshot_history_months',
        'companion_min_support', 'companion_min_pair_accounts', 'companion_min_lift',
        'promoter_min_score', 'detractor_max_score', 'nps_recent_days', 'utilization_cap'
    ]) }}
{%- endmacro %}


{#-
    md5 of the checksums of every model and seed file of this project and of the vars in
    snapshot_fingerprint_vars(): when it differs from the one stored with the rows, the
    logic may have changed and every date is recomputed.
-#}
{% macro snapshot_build_fingerprint() -%}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set parts = [] -%}
    {%- for node in graph.nodes.values() | sort(attribute='unique_id') -%}
        {%- if node.resource_type in ('model', 'seed') and node.package_name == project_name -%}
            {%- do parts.append(node.unique_id ~ '=' ~ node.checksum.checksum) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for name in snapshot_fingerprint_vars() -%}
        {%- do parts.append(name ~ '=' ~ var(name)) -%}
    {%- endfor -%}
    {{ return(local_md5(parts | join('|'))) }}
{%- endmacro %}


{#-
    What this build of the calling model computes: a dict with
      dates       none (every snapshot date) or the list of snapshot dates to recompute
                  ('YYYY-MM-DD' strings; may be empty)
      loaded_at   the newest raw _loaded_at among the inputs now ('...' timestamp or none)
      fingerprint snapshot_build_fingerprint()
    Runs its queries when dbt compiles the model, before anything of it is written.
-#}
{% macro snapshot_rebuild_plan() -%}
    {%- set plan = {'dates': none, 'loaded_at': none, 'fingerprint': ''} -%}
    {#- a unit test gives its rows as fixtures (and only the model's own refs): every date -#}
    {%- if model.resource_type == 'unit_test' -%}
        {{ return(plan) }}
    {%- endif -%}
    {#- refs at parse time too, so dbt knows the dependencies -#}
    {%- set usage = ref('stg_usage__usage_daily') -%}
    {%- set crm_versions = ref('stg_crm__record_versions') -%}
    {%- set billing_versions = ref('stg_billing__record_versions') -%}
    {%- set snapshot_dates = ref('int_snapshot_dates_selected') -%}
    {%- set fingerprint = snapshot_build_fingerprint() -%}
    {%- do plan.update({'fingerprint': fingerprint}) -%}
    {%- if not execute -%}
        {{ return(plan) }}
    {%- endif -%}
    {#- inputs not built yet: a compile on an empty warehouse (sqlfluff's dbt templater, `dbt
        compile`); a build always builds them first -#}
    {%- for input in [usage, crm_versions, billing_versions] -%}
        {%- if load_relation(input) is none -%}
            {{ return(plan) }}
        {%- endif -%}
    {%- endfor -%}

    {%- set newest_sql -%}
        select max(_loaded_at) from (
            select max(_loaded_at) as _loaded_at from {{ usage }}
            union all
            select max(_loaded_at) from {{ crm_versions }}
            union all
            select max(_loaded_at) from {{ billing_versions }}
        ) as inputs
    {%- endset -%}
    {%- set newest = run_query(newest_sql).columns[0].values()[0] -%}
    {%- do plan.update({'loaded_at': none if newest is none else (newest | string)}) -%}
    {%- if not is_incremental() -%}
        {{ return(plan) }}
    {%- endif -%}

    {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
    {%- if '_inputs_loaded_at' not in columns or '_build_fingerprint' not in columns -%}
        {{ log(this ~ ': built before incremental snapshots, recomputing every date', info=true) }}
        {{ return(plan) }}
    {%- endif -%}
    {%- set state_sql -%}
        select
            max(_inputs_loaded_at) as built_from,
            count(*) filter (where _build_fingerprint is distinct from '{{ fingerprint }}') as stale_rows
        from {{ this }}
    {%- endset -%}
    {%- set state = run_query(state_sql).rows[0] -%}
    {%- if state[0] is none or state[1] > 0 -%}
        {%- if state[1] > 0 -%}
            {{ log(this ~ ': models, seeds or vars changed since the last build, recomputing every date', info=true) }}
        {%- endif -%}
        {{ return(plan) }}
    {%- endif -%}
    {%- set built_from = "cast('" ~ state[0] ~ "' as timestamp)" -%}

    {#- 1. the first usage day loaded since, and whether any CRM or billing record changed
          (both scans skip the row groups loaded before `built_from`) -#}
    {%- set changes_sql -%}
        select
            (select min(usage_date) from {{ usage }} where _loaded_at > {{ built_from }}),
            (select count(*) from {{ crm_versions }} where _loaded_at > {{ built_from }})
            + (select count(*) from {{ billing_versions }} where _loaded_at > {{ built_from }})
    {%- endset -%}
    {%- set changes = run_query(changes_sql).rows[0] -%}
    {%- set changed_from = [] -%}
    {%- if changes[0] is not none -%}
        {%- do changed_from.append(changes[0] | string) -%}
    {%- endif -%}
    {#- 2. only when records changed: the earliest date of any of their versions, old or new -#}
    {%- if changes[1] > 0 -%}
        {%- set records_sql -%}
            with

            record_versions as (

                select * from {{ crm_versions }}
                union all
                select * from {{ billing_versions }}

            ),

            changed_records as (

                select distinct table_name, record_id
                from record_versions
                where _loaded_at > {{ built_from }}

            )

            select min(record_versions.affects_from_date)
            from record_versions
            inner join changed_records
                on changed_records.table_name = record_versions.table_name
                and changed_records.record_id = record_versions.record_id
        {%- endset -%}
        {%- set earliest = run_query(records_sql).columns[0].values()[0] -%}
        {%- if earliest is not none -%}
            {%- do changed_from.append(earliest | string) -%}
        {%- endif -%}
    {%- endif -%}
    {%- set changed_from = (changed_from | min) if changed_from else none -%}

    {#- 3. the dates to recompute: new ones, and those on or after the earliest change -#}
    {%- set dates_sql -%}
        select snapshot_date
        from {{ snapshot_dates }}
        where snapshot_date not in (select distinct snapshot_date from {{ this }})
        {%- if changed_from is not none %}
            or snapshot_date >= cast('{{ changed_from }}' as date)
        {%- endif %}
        order by snapshot_date
    {%- endset -%}
    {%- set dates = run_query(dates_sql).columns[0].values() | map('string') | list -%}
    {{ log(this ~ ': recomputing ' ~ (dates | length) ~ ' snapshot date(s) ' ~ (dates | join(', ')) ~ ' (inputs loaded after ' ~ state[0] ~ ')', info=true) }}
    {%- do plan.update({'dates': dates}) -%}
    {{ return(plan) }}
{%- endmacro %}


{#-
    The opening CTE (`spine`) of every snapshotted model: the rows of
    int_account_snapshots_spined, one per account and snapshot date, at the snapshot dates
    `plan` recomputes (every date on a full build).
-#}
{% macro snapshot_spine(plan) -%}
    select * from {{ ref('int_account_snapshots_spined') }}
    where {{ snapshot_dates_filter(plan) }}
{%- endmacro %}


{#- A WHERE condition on `column` keeping the plan's snapshot dates ('true' for all). -#}
{% macro snapshot_dates_filter(plan, column='snapshot_date') -%}
    {%- if plan.dates is none -%}
        true
    {%- elif plan.dates | length == 0 -%}
        false
    {%- else -%}
        {{ column }} in ({% for d in plan.dates %}cast('{{ d }}' as date){{ ', ' if not loop.last }}{% endfor %})
    {%- endif -%}
{%- endmacro %}


{#-
    A WHERE condition on a daily `column` keeping the days that the plan's snapshot dates
    look back on (`lookback_days` up to the snapshot date), so the scan can skip the rest.
-#}
{% macro snapshot_lookback_filter(plan, column, lookback_days) -%}
    {%- if plan.dates is none or plan.dates | length == 0 -%}
        true
    {%- else -%}
        {%- set first = modules.datetime.date.fromisoformat(plan.dates[0]) - modules.datetime.timedelta(days=lookback_days - 1) -%}
        {{ column }} between cast('{{ first }}' as date) and cast('{{ plan.dates[-1] }}' as date)
    {%- endif -%}
{%- endmacro %}


{#- The two lineage columns every incremental snapshot model ends with. -#}
{% macro snapshot_build_columns(plan) -%}
    {%- if plan.loaded_at is none -%}
        cast(null as timestamp) as _inputs_loaded_at,
    {%- else -%}
        cast('{{ plan.loaded_at }}' as timestamp) as _inputs_loaded_at,
    {%- endif %}
        cast('{{ plan.fingerprint }}' as {{ dbt.type_string() }}) as _build_fingerprint
{%- endmacro %}


{#- Pre-hook: drop the snapshot dates that are no longer in the spine (left the window). -#}
{% macro snapshot_dates_pre_hook() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where snapshot_date not in (
            select distinct snapshot_date from {{ ref('int_account_snapshots_spined') }}
        )
    {%- endif -%}
{%- endmacro %}
