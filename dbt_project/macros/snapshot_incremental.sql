{#-
    Incremental snapshot models: a model keyed on snapshot_date (the models of
    models/intermediate/snapshotted/, and the marts account_metric_snapshots, account_offers
    and account_snapshots) keeps the rows of the snapshot dates whose inputs
    did not change since its last build and recomputes only the others. A daily run then
    computes the new scoring date (as_of), not every month-end again. The folder's config in
    dbt_project.yml makes each model incremental (delete+insert on snapshot_date) with
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
        which give the first date each version of a record can change, old and new);
      - with labels=true (a model with labels, which look *forward* from the snapshot date):
        the dates whose labels are not complete in the table (their window
        (snapshot_date, snapshot_date + label_horizon_days] reached past the previous build's
        label cutoff: the days that arrived since may fall into it) or not complete now (the
        cutoff moved back), and a changed record touches the dates up to label_horizon_days
        before it too (an expansion on day e is a label of the snapshots e - horizon .. e - 1).
    `delete+insert` on snapshot_date replaces those dates whole; the pre-hook deletes the
    dates that left the spine (int_account_snapshots_spined: older than
    snapshot_history_months, the previous as_of). The result equals a `--full-refresh` build
    (tests/dbt/test_incremental_snapshots.py).

    Where a build records what it was built from:
      columns  (state='columns', the intermediates) the last two columns of every row,
               `_inputs_loaded_at` and `_build_fingerprint` (snapshot_build_columns);
      table    (state='table', the marts, whose columns are their contract) one row per model
               in `_incremental_builds` of the model's schema, written by the post-hook
               snapshot_build_state_hook() in the same transaction as the rows. Its
               fingerprint also covers the usage-metric declaration (stg_config__usage_metrics,
               data the loader rewrites, with no _loaded_at): account_metric_snapshots and the
               marts after it read it. Its `recomputed` says which dates (or months) the
               build recomputed, for the data tests of a daily build (get_where_subquery.sql).
    The monthly marts (mrr_movements, mrr_billing_reconciliation) use `month_rebuild_plan`:
    the same changes, as the first month to recompute.

    Not detected: rows deleted from raw other than by the loader's full refresh (which makes
    every row new), and edits of macros (they are not in dbt's graph). After either, run
    `dbt build --full-refresh`.
-#}


{#- The vars that change what the snapshot models compute (every var of dbt_project.yml but as_of). -#}
{% macro snapshot_fingerprint_vars() -%}
    {{ return([
        'label_horizon_days', 'reporting_currency', 'snapshot_history_months',
        'companion_min_support', 'companion_min_pair_accounts', 'companion_min_lift',
        'promoter_min_score', 'detractor_max_score', 'nps_recent_days', 'utilization_cap',
        'adoption_full_active_days', 'adoption_full_utilization', 'adoption_max_decline',
        'engagement_recency_days', 'engagement_full_activities_30d',
        'engagement_full_meetings_90d', 'support_points_per_ticket_90d',
        'support_points_per_open_ticket', 'support_points_per_urgent_open_ticket',
        'nps_stale_days', 'loyalty_renewal_min_months', 'loyalty_fan_min_tenure_days',
        'loyalty_fan_min_expansions', 'offer_limit_threshold'
    ]) }}
{%- endmacro %}


{#-
    md5 of the checksums of every model and seed file of this project and of the vars in
    snapshot_fingerprint_vars() (and, with watch_declaration, of the declared usage metrics):
    when it differs from the one stored with the rows, the logic may have changed and every
    date is recomputed.
-#}
{% macro snapshot_build_fingerprint(watch_declaration=false) -%}
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
    {%- if watch_declaration -%}
        {%- do parts.append('declaration=' ~ snapshot_declaration_hash()) -%}
    {%- endif -%}
    {{ return(local_md5(parts | join('|'))) }}
{%- endmacro %}


{#- md5 of what the usage-metric declaration says that the models compute with. -#}
{% macro snapshot_declaration_hash() -%}
    {%- set declaration = ref('stg_config__usage_metrics') -%}
    {%- if not execute or load_relation(declaration) is none -%}
        {{ return('') }}
    {%- endif -%}
    {%- set hash_sql -%}
        select md5(coalesce(string_agg(
            metric || ':' || aggregation || ':' || coalesce(limit_period, ''), '|'
            order by metric
        ), ''))
        from {{ declaration }}
    {%- endset -%}
    {{ return(run_query(hash_sql).columns[0].values()[0]) }}
{%- endmacro %}


{#-
    The relations a rebuild plan reads. Called when dbt parses the calling model too, so
    these refs are dependencies of every incremental snapshot model.
-#}
{% macro snapshot_plan_inputs(watch_declaration=false) -%}
    {%- set inputs = {
        'usage': ref('stg_usage__usage_daily'),
        'crm_versions': ref('stg_crm__record_versions'),
        'billing_versions': ref('stg_billing__record_versions'),
        'record_changes': ref('int_record_versions_summarized'),
        'snapshot_dates': ref('int_snapshot_dates_selected'),
        'pipeline_dates': ref('int_pipeline_dates_resolved'),
    } -%}
    {%- if watch_declaration -%}
        {%- do inputs.update({'declaration': ref('stg_config__usage_metrics')}) -%}
    {%- endif -%}
    {{ return(inputs) }}
{%- endmacro %}


{#- The newest raw _loaded_at among the inputs now ('...' string, or none). -#}
{% macro snapshot_inputs_loaded_at(inputs) -%}
    {%- set newest_sql -%}
        select max(_loaded_at) from (
            select max(_loaded_at) as _loaded_at from {{ inputs.usage }}
            union all
            select max(_loaded_at) from {{ inputs.crm_versions }}
            union all
            select max(_loaded_at) from {{ inputs.billing_versions }}
        ) as inputs
    {%- endset -%}
    {%- set newest = run_query(newest_sql).columns[0].values()[0] -%}
    {{ return(none if newest is none else (newest | string)) }}
{%- endmacro %}


{#- The table of build states of the models with state='table', in the model's schema. -#}
{% macro snapshot_build_state_relation(database=none, schema=none) -%}
    {{ return(api.Relation.create(
        database=database or this.database, schema=schema or this.schema,
        identifier='_incremental_builds'
    )) }}
{%- endmacro %}


{#- The build-state table's DDL (create if it does not exist). -#}
{% macro snapshot_build_state_ddl(relation) -%}
    create table if not exists {{ relation }} (
        model_name {{ dbt.type_string() }},
        as_of_date date,
        _inputs_loaded_at timestamp,
        _build_fingerprint {{ dbt.type_string() }},
        _built_at timestamp,
        recomputed {{ dbt.type_string() }}
    )
{%- endmacro %}


{#-
    on-run-start: the build-state table of every schema holding a model whose post-hook is
    snapshot_build_state_hook(), created once before any model runs. Two such models of one
    schema building at the same time (threads > 1) would otherwise both create it in their
    own transaction on a first build, and DuckDB fails the second with "Catalog write-write
    conflict on create".
-#}
{% macro create_build_state_tables() -%}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set schemas = {} -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' -%}
        {%- if 'snapshot_build_state_hook' in node_hooks_sql(node, 'post') -%}
            {%- do schemas.update({node.database ~ '.' ~ node.schema: (node.database, node.schema)}) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for key in schemas | sort -%}
        {%- set database, schema = schemas[key] -%}
        {%- do adapter.create_schema(api.Relation.create(database=database, schema=schema)) -%}
        {%- set state = snapshot_build_state_relation(database, schema) -%}
        {%- do run_query(snapshot_build_state_ddl(state)) -%}
        {#- a table made before the column existed -#}
        {%- do run_query('alter table ' ~ state ~ ' add column if not exists recomputed ' ~ dbt.type_string()) -%}
    {%- endfor -%}
    select 1
{%- endmacro %}


{#- The SQL of a graph node's pre- or post-hooks (`kind`: 'pre' or 'post'), joined. -#}
{% macro node_hooks_sql(node, kind) -%}
    {%- set sqls = [] -%}
    {%- for hook in node.config.get(kind ~ '-hook', []) -%}
        {%- do sqls.append(hook.sql if hook.sql is defined else hook | string) -%}
    {%- endfor -%}
    {{ return(sqls | join('\n')) }}
{%- endmacro %}


{#-
    What the last build of this model was built from: a dict with built_from (the newest
    raw _loaded_at it had read) and as_of_date (state='table' only), or none when every row
    must be recomputed (no state, or built with another fingerprint).
-#}
{% macro snapshot_previous_build(state, fingerprint) -%}
    {%- if state == 'table' -%}
        {%- set state_relation = snapshot_build_state_relation() -%}
        {%- if load_relation(state_relation) is none -%}
            {{ return(none) }}
        {%- endif -%}
        {%- set state_sql -%}
            select
                max(_inputs_loaded_at) as built_from,
                count(*) filter (where _build_fingerprint is distinct from '{{ fingerprint }}') as stale_rows,
                max(as_of_date) as as_of_date
            from {{ state_relation }}
            where model_name = '{{ this.identifier }}'
        {%- endset -%}
    {%- else -%}
        {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
        {%- if '_inputs_loaded_at' not in columns or '_build_fingerprint' not in columns -%}
            {{ log(this ~ ': built before incremental snapshots, recomputing every date', info=true) }}
            {{ return(none) }}
        {%- endif -%}
        {%- set state_sql -%}
            select
                max(_inputs_loaded_at) as built_from,
                count(*) filter (where _build_fingerprint is distinct from '{{ fingerprint }}') as stale_rows,
                null as as_of_date
            from {{ this }}
        {%- endset -%}
    {%- endif -%}
    {%- set row = run_query(state_sql).rows[0] -%}
    {%- if row[0] is none or row[1] > 0 -%}
        {%- if row[1] > 0 -%}
            {{ log(this ~ ': models, seeds or vars changed since the last build, recomputing everything', info=true) }}
        {%- endif -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return({
        'built_from': row[0] | string,
        'as_of_date': none if row[2] is none else (row[2] | string),
    }) }}
{%- endmacro %}


{#-
    The earliest date that rows loaded after `built_from` can change ('YYYY-MM-DD' string, or
    none when nothing was loaded): the first usage day loaded since (with usage=true), and the
    earliest affects_from_date of any version, old or new, of a CRM or billing record with a
    version loaded since, less `record_shift_days`. Both scans skip the row groups loaded
    before `built_from`.
-#}
{% macro snapshot_changed_from(inputs, built_from, usage=true, record_shift_days=0) -%}
    {%- set built_from = "cast('" ~ built_from ~ "' as timestamp)" -%}
    {%- set changes_sql -%}
        select
            {% if usage -%}
            (select min(usage_date) from {{ inputs.usage }} where _loaded_at > {{ built_from }}),
            {%- else -%}
            cast(null as date),
            {%- endif %}
            (select count(*) from {{ inputs.crm_versions }} where _loaded_at > {{ built_from }})
            + (select count(*) from {{ inputs.billing_versions }} where _loaded_at > {{ built_from }})
    {%- endset -%}
    {%- set changes = run_query(changes_sql).rows[0] -%}
    {%- set changed_from = [] -%}
    {%- if changes[0] is not none -%}
        {%- do changed_from.append(changes[0] | string) -%}
    {%- endif -%}
    {#- only when records changed: the earliest date of any of their versions, old or new
        (int_record_versions_summarized: per record, its newest load and earliest date) -#}
    {%- if changes[1] > 0 -%}
        {%- set records_sql -%}
            select min(first_affects_from_date)
            from {{ inputs.record_changes }}
            where last_loaded_at > {{ built_from }}
        {%- endset -%}
        {%- set earliest = run_query(records_sql).columns[0].values()[0] -%}
        {%- if earliest is not none -%}
            {%- set earliest = modules.datetime.date.fromisoformat(earliest | string) -%}
            {%- if record_shift_days -%}
                {%- set earliest = earliest - modules.datetime.timedelta(days=record_shift_days | int) -%}
            {%- endif -%}
            {%- do changed_from.append(earliest | string) -%}
        {%- endif -%}
    {%- endif -%}
    {{ return((changed_from | min) if changed_from else none) }}
{%- endmacro %}


{#-
    What this build of the calling model computes: a dict with
      dates       none (every snapshot date) or the list of snapshot dates to recompute
                  ('YYYY-MM-DD' strings; may be empty)
      loaded_at   the newest raw _loaded_at among the inputs now ('...' timestamp or none)
      fingerprint snapshot_build_fingerprint()
      batches     none (one query) or the dates in batches, one query each
                  (macros/snapshot_batches.sql); the model's SQL computes the first
    labels: the model has labels and is_label_complete (see the header); state: 'columns' or
    'table' (see the header); watch_declaration: the fingerprint covers the declared usage
    metrics (always with state='table'); rows_per_account: the model's rows per account and
    snapshot date, for the batch size (a number, or 'usage_metrics': one per usage metric).
    Runs its queries when dbt compiles the model, before anything of it is written.
-#}
{% macro snapshot_rebuild_plan(labels=false, state='columns', watch_declaration=false, rows_per_account=1) -%}
    {%- set plan = {'dates': none, 'loaded_at': none, 'fingerprint': '', 'batches': none} -%}
    {#- a unit test gives its rows as fixtures (and only the model's own refs): every date -#}
    {%- if model.resource_type == 'unit_test' -%}
        {{ return(plan) }}
    {%- endif -%}
    {%- set watch_declaration = watch_declaration or state == 'table' -%}
    {#- refs at parse time too, so dbt knows the dependencies (the spine: the pre-hook's) -#}
    {%- set inputs = snapshot_plan_inputs(watch_declaration) -%}
    {%- do inputs.update({'spine': ref('int_account_snapshots_spined')}) -%}
    {%- if not execute -%}
        {{ return(plan) }}
    {%- endif -%}
    {#- inputs not built yet: a compile on an empty warehouse (sqlfluff's dbt templater, `dbt
        compile`); a build always builds them first -#}
    {%- for input in inputs.values() -%}
        {%- if load_relation(input) is none -%}
            {{ return(plan) }}
        {%- endif -%}
    {%- endfor -%}
    {%- set fingerprint = snapshot_build_fingerprint(watch_declaration) -%}
    {%- do plan.update({'fingerprint': fingerprint, 'loaded_at': snapshot_inputs_loaded_at(inputs)}) -%}
    {%- set previous = snapshot_previous_build(state, fingerprint) if is_incremental() else none -%}
    {%- if previous is not none -%}
        {%- do plan.update({'dates': snapshot_changed_dates(inputs, previous, labels)}) -%}
    {%- endif -%}
    {#- too many rows for one query: the dates in batches (macros/snapshot_batches.sql) -#}
    {%- set budget = snapshot_batch_rows() -%}
    {%- if budget is not none and (plan.dates is none or plan.dates | length > 1) -%}
        {%- if rows_per_account == 'usage_metrics' -%}
            {%- set rows_per_account = snapshot_usage_metric_count(inputs.usage) -%}
        {%- endif -%}
        {%- do plan.update({'batches': snapshot_batches(inputs.spine, plan.dates, rows_per_account, budget)}) -%}
    {%- endif -%}
    {%- if plan.batches -%}
        {{ log(this ~ ': computing ' ~ (plan.batches | sum(start=[]) | length) ~ ' snapshot date(s) in ' ~ (plan.batches | length) ~ ' batches of at most ' ~ budget ~ ' rows', info=true) }}
    {%- endif -%}
    {{ return(plan) }}
{%- endmacro %}


{#-
    The snapshot dates an incremental build recomputes after `previous`
    (snapshot_previous_build): see snapshot_rebuild_plan.
-#}
{% macro snapshot_changed_dates(inputs, previous, labels) -%}

    {%- set horizon = var('label_horizon_days') | int if labels else 0 -%}
    {%- set changed_from = snapshot_changed_from(inputs, previous.built_from, record_shift_days=horizon) -%}

    {#- the dates to recompute: new ones, those on or after the earliest change and, with
        labels, those whose labels were or are not complete -#}
    {%- set dates_sql -%}
        select snapshot_dates.snapshot_date
        from {{ inputs.snapshot_dates }} as snapshot_dates
        cross join {{ inputs.pipeline_dates }} as pipeline_dates
        where snapshot_dates.snapshot_date not in (select distinct snapshot_date from {{ this }})
        {%- if changed_from is not none %}
            or snapshot_dates.snapshot_date >= cast('{{ changed_from }}' as date)
        {%- endif %}
        {%- if labels %}
            or snapshot_dates.snapshot_date in (
                select distinct snapshot_date from {{ this }} where not is_label_complete
            )
            or cast({{ dbt.dateadd('day', horizon, 'snapshot_dates.snapshot_date') }} as date)
            > pipeline_dates.label_cutoff_date
        {%- endif %}
        order by snapshot_dates.snapshot_date
    {%- endset -%}
    {%- set dates = run_query(dates_sql).columns[0].values() | map('string') | list -%}
    {{ log(this ~ ': recomputing ' ~ (dates | length) ~ ' snapshot date(s) ' ~ (dates | join(', ')) ~ ' (inputs loaded after ' ~ previous.built_from ~ ')', info=true) }}
    {{ return(dates) }}
{%- endmacro %}


{#-
    The rebuild plan of a model keyed on month_start (mrr_movements,
    mrr_billing_reconciliation; state='table'): a dict with
      from_month  none (every month) or the first month to recompute ('YYYY-MM-01'): the
                  month of the earliest of the day after the previous build's as_of, this
                  build's as_of (the as_of month is partial: it closes at the end of the
                  as_of day) and the
                  earliest date that CRM or billing records loaded since can change (usage
                  days do not count: only the as_of they move)
      loaded_at, fingerprint  as in snapshot_rebuild_plan
    Every later month is recomputed (balances carry forward); month_rebuild_pre_hook deletes
    the months after the as_of month.
-#}
{% macro month_rebuild_plan() -%}
    {%- set plan = {'from_month': none, 'loaded_at': none, 'fingerprint': ''} -%}
    {%- if model.resource_type == 'unit_test' -%}
        {{ return(plan) }}
    {%- endif -%}
    {%- set inputs = snapshot_plan_inputs(true) -%}
    {%- if not execute -%}
        {{ return(plan) }}
    {%- endif -%}
    {%- for input in inputs.values() -%}
        {%- if load_relation(input) is none -%}
            {{ return(plan) }}
        {%- endif -%}
    {%- endfor -%}
    {%- set fingerprint = snapshot_build_fingerprint(true) -%}
    {%- do plan.update({'fingerprint': fingerprint, 'loaded_at': snapshot_inputs_loaded_at(inputs)}) -%}
    {%- if not is_incremental() -%}
        {{ return(plan) }}
    {%- endif -%}
    {%- set previous = snapshot_previous_build('table', fingerprint) -%}
    {%- if previous is none or previous.as_of_date is none -%}
        {{ return(plan) }}
    {%- endif -%}
    {%- set as_of = run_query('select as_of_date from ' ~ inputs.pipeline_dates).columns[0].values()[0] -%}
    {#- the previous as_of month counted the events up to the end of its as_of day -#}
    {%- set candidates = [(modules.datetime.date.fromisoformat(previous.as_of_date) + modules.datetime.timedelta(days=1)) | string] -%}
    {%- if as_of is not none -%}
        {%- do candidates.append(as_of | string) -%}
    {%- endif -%}
    {%- set changed_from = snapshot_changed_from(inputs, previous.built_from, usage=false) -%}
    {%- if changed_from is not none -%}
        {%- do candidates.append(changed_from) -%}
    {%- endif -%}
    {%- set earliest = candidates | min -%}
    {%- set from_month = earliest[:8] ~ '01' -%}
    {{ log(this ~ ': recomputing the months from ' ~ from_month ~ ' (inputs loaded after ' ~ previous.built_from ~ ')', info=true) }}
    {%- do plan.update({'from_month': from_month}) -%}
    {{ return(plan) }}
{%- endmacro %}


{#- A WHERE condition on a month column keeping the plan's months ('true' for all). -#}
{% macro month_rebuild_filter(plan, column='month_start') -%}
    {{ rebuild_marker('months from', plan.from_month or 'all') }}
    {%- if plan.from_month is none -%}
        true
    {%- else -%}
        {{ column }} >= cast('{{ plan.from_month }}' as date)
    {%- endif -%}
{%- endmacro %}


{#-
    What a build recomputes, as a comment in its SQL (`/* rebuild <key>: <value> */`), and the
    value read back from the compiled SQL by the pre-hook. delete+insert deletes only the keys
    the new rows have: a recomputed date or month that now has no rows at all (a declaration
    without metrics, a date without product pairs) would keep its old rows. The pre-hook
    deletes every recomputed key first, from the plan the rows were computed with.
-#}
{% macro rebuild_marker(key, value) -%}
    /* rebuild {{ key }}: {{ value }} */
{%- endmacro %}

{% macro compiled_rebuild_marker(key) -%}
    {%- set code = model.compiled_code or '' -%}
    {%- set tag = '/* rebuild ' ~ key ~ ': ' -%}
    {%- if tag not in code -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(code.split(tag, 1)[1].split(' */', 1)[0]) }}
{%- endmacro %}


{#- Pre-hook of the monthly marts: drop the months the build recomputes, and those after the
    as_of month (as_of moved back). -#}
{% macro month_rebuild_pre_hook() -%}
    {%- if is_incremental() -%}
        {%- set from_month = compiled_rebuild_marker('months from') -%}
        delete from {{ this }}
        where month_start > (
            select cast({{ dbt.date_trunc('month', 'as_of_date') }} as date)
            from {{ ref('int_pipeline_dates_resolved') }}
        )
        {%- if from_month == 'all' %}
            or true
        {%- elif from_month %}
            or month_start >= cast('{{ from_month }}' as date)
        {%- endif %}
    {%- endif -%}
{%- endmacro %}


{#-
    Post-hook of the models with state='table': record what this build was built from (one
    row per model in _incremental_builds), in the transaction that wrote the rows.
-#}
{% macro snapshot_build_state_hook() -%}
    {%- set state_relation = snapshot_build_state_relation() -%}
    {%- set inputs = snapshot_plan_inputs(true) -%}
    {%- set loaded_at = snapshot_inputs_loaded_at(inputs) if execute else none -%}
    {#- what this build recomputed: its snapshot dates ('all', 'none' or a list), or the months
        from a month; read by the data tests of a daily build (macros/get_where_subquery.sql) -#}
    {%- set dates = compiled_rebuild_marker('snapshot dates') if execute else none -%}
    {%- set months = compiled_rebuild_marker('months from') if execute else none -%}
    {%- set recomputed = dates if dates else ('months from ' ~ months if months else none) -%}
    {#- the table exists: create_build_state_tables() (on-run-start) made it -#}
    delete from {{ state_relation }} where model_name = '{{ this.identifier }}';
    insert into {{ state_relation }}
        (model_name, as_of_date, _inputs_loaded_at, _build_fingerprint, _built_at, recomputed)
    select
        '{{ this.identifier }}',
        as_of_date,
        {{ "cast(null as timestamp)" if loaded_at is none else "cast('" ~ loaded_at ~ "' as timestamp)" }},
        '{{ snapshot_build_fingerprint(true) }}',
        current_timestamp,
        {{ "cast(null as " ~ dbt.type_string() ~ ")" if recomputed is none else "'" ~ recomputed ~ "'" }}
    from {{ inputs.pipeline_dates }}
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


{#- A parenthesised list of date literals, for IN: `(cast('2026-10-31' as date), ...)`. -#}
{% macro date_literals(dates) -%}
    ({% for d in dates %}cast('{{ d }}' as date){{ ', ' if not loop.last }}{% endfor %})
{%- endmacro %}


{#- A WHERE condition on `column` keeping the plan's snapshot dates ('true' for all). -#}
{% macro snapshot_dates_filter(plan, column='snapshot_date') -%}
    {{ rebuild_marker('snapshot dates', 'all' if plan.dates is none else (plan.dates | join(',') or 'none')) }}
    {%- if plan.batches -%}
        {{ rebuild_marker('batches', plan.batches | map('join', ',') | join(';')) }}
        {{- column }} in {{ snapshot_batch_list(plan.batches[0]) }}
    {%- elif plan.dates is none -%}
        true
    {%- elif plan.dates | length == 0 -%}
        false
    {%- else -%}
        {{ column }} in {{ date_literals(plan.dates) }}
    {%- endif -%}
{%- endmacro %}


{#-
    A WHERE condition on a daily `column` keeping the days that the plan's snapshot dates
    look back on (`lookback_days` up to the snapshot date), so the scan can skip the rest.
-#}
{% macro snapshot_lookback_filter(plan, column, lookback_days) -%}
    {%- if plan.batches -%}
        {{ rebuild_marker('batches', plan.batches | map('join', ',') | join(';')) }}
        {{- column }} between {{ snapshot_batch_first(plan.batches[0], lookback_days - 1) }} and {{ snapshot_batch_last(plan.batches[0]) }}
    {%- elif plan.dates is none or plan.dates | length == 0 -%}
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


{#- Pre-hook: drop the snapshot dates that are no longer in the spine (left the window), and
    those the build recomputes (rebuild_marker). -#}
{% macro snapshot_dates_pre_hook() -%}
    {%- if is_incremental() -%}
        {%- set planned = compiled_rebuild_marker('snapshot dates') -%}
        delete from {{ this }}
        where snapshot_date not in (
            select distinct snapshot_date from {{ ref('int_account_snapshots_spined') }}
        )
        {%- if planned == 'all' %}
            or true
        {%- elif planned and planned != 'none' %}
            or snapshot_date in {{ date_literals(planned.split(',')) }}
        {%- endif %}
    {%- endif -%}
{%- endmacro %}
