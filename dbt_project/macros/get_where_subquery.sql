{#-
    dbt's `where` config of data tests (the tested relation becomes a filtered subquery), plus
    what a daily build of the pipeline tests of its incremental models.

    With the var `data_tests_scope: changed` (the pipeline passes it when the previous dbt
    build of its home succeeded; the default `all` tests whole tables, so a plain `dbt build`
    and the build after a failed one check everything):

    - `where: "latest_build_from:usage_date"` tests the rows whose `usage_date` is on or after
      the first `usage_date` written by the latest build of the model (its rows with the
      highest `_built_at`): the days it wrote, and every older row of those days (so a
      duplicate across old and new rows is still found);
    - a test of a model keyed on snapshot_date (snapshot_dates_pre_hook,
      macros/snapshot_incremental.sql) without a `where` tests the snapshot dates its latest
      build recomputed (snapshot_tested_dates), when the test can only fail on the rows of one
      date: not_null, accepted_values, expression_is_true, and uniqueness of a combination of
      columns that holds snapshot_date. delete+insert replaces whole dates, so a failing row
      can only be in a date just written. Relationships and any other test check the whole
      table.

    Otherwise `latest_build_from:` tests every row, and any other `where` works as in dbt.
-#}
{% macro default__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set changed_only = var('data_tests_scope', 'all') == 'changed' -%}
    {%- if where and where.startswith('latest_build_from:') -%}
        {%- if not changed_only -%}
            {%- do return(relation) -%}
        {%- endif -%}
        {%- set column = where.split(':', 1)[1] | trim -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ column }} >= (
                select min({{ column }}) from {{ relation }}
                where _built_at = (select max(_built_at) from {{ relation }})
            )) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- elif where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- endif -%}
    {%- set dates = snapshot_tested_dates(relation) if changed_only else none -%}
    {%- if dates is none -%}
        {%- do return(relation) -%}
    {%- endif -%}
    {%- set filtered -%}
        (select * from {{ relation }} where
        {%- if dates | length == 0 %} false
        {%- else %} snapshot_date in {{ date_literals(dates) }}
        {%- endif %}) dbt_subquery
    {%- endset -%}
    {%- do return(filtered) -%}
{%- endmacro %}


{#- The tests that can only fail on rows of one snapshot date (see above). -#}
{% macro snapshot_date_local_test(test) -%}
    {%- set name = test.name if test else none -%}
    {%- if name in ('not_null', 'accepted_values', 'expression_is_true') -%}
        {{ return(true) }}
    {%- elif name == 'unique_combination_of_columns' -%}
        {%- set columns = test.kwargs.get('combination_of_columns') or [] -%}
        {{ return('snapshot_date' in (columns | map('lower') | list)) }}
    {%- endif -%}
    {{ return(false) }}
{%- endmacro %}


{#-
    The snapshot dates the latest build of the model under test recomputed ('YYYY-MM-DD'
    strings, maybe none of them), or none to test the whole table: the test is not
    date-local, the model is not keyed on snapshot_date, or what it recomputed is not known.
      state='table'   the dates its build state row in _incremental_builds recorded
      state='columns' the dates of its rows with the newest _inputs_loaded_at (the latest
                      build wrote its rows with the newest; a date kept from an earlier build
                      with the same value is tested again, which is harmless)
-#}
{% macro snapshot_tested_dates(relation) -%}
    {%- if not execute or model.resource_type != 'test' or not model.attached_node -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set parent = graph.nodes.get(model.attached_node) -%}
    {%- if parent is none or not snapshot_date_local_test(model.test_metadata) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if 'snapshot_dates_pre_hook' not in node_hooks_sql(parent, 'pre') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if 'snapshot_build_state_hook' in node_hooks_sql(parent, 'post') -%}
        {%- set recorded = recorded_recomputed(parent) -%}
        {%- if recorded is none or recorded == 'all' -%}
            {{ return(none) }}
        {%- endif -%}
        {{ return([] if recorded == 'none' else recorded.split(',')) }}
    {%- endif -%}
    {%- set dates_sql -%}
        select distinct cast(snapshot_date as {{ dbt.type_string() }}) from {{ relation }}
        where _inputs_loaded_at = (select max(_inputs_loaded_at) from {{ relation }})
    {%- endset -%}
    {%- set dates = run_query(dates_sql).columns[0].values() | list -%}
    {{ return(dates if dates else none) }}
{%- endmacro %}


{#-
    In a singular test: a condition on `column` keeping the rows of the model `model_name` its
    latest build recomputed, when the build's data tests check what changed
    (`data_tests_scope: changed`) and the model records what it recomputed (a build state row
    in _incremental_builds: snapshot dates, or the months from a first one); 'true' otherwise.
    `months_before` widens a month scope by that many earlier months, for a test that
    compares a month with the one before it.
-#}
{% macro recomputed_rows(model_name, column, months_before=0) -%}
    {%- if not execute or var('data_tests_scope', 'all') != 'changed' -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set node = graph.nodes.get('model.' ~ project_name ~ '.' ~ model_name) -%}
    {%- if node is none or 'snapshot_build_state_hook' not in node_hooks_sql(node, 'post') -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set recorded = recorded_recomputed(node) -%}
    {%- if recorded is none -%}
        {{ return('true') }}
    {%- elif recorded == 'none' -%}
        {{ return('false') }}
    {%- endif -%}
    {%- set months = modules.re.fullmatch('months from (\\d{4}-\\d{2}-\\d{2})', recorded) -%}
    {%- if months -%}
        {%- set ns = namespace(first=modules.datetime.date.fromisoformat(months.group(1)).replace(day=1)) -%}
        {%- for _ in range(months_before | int) -%}
            {%- set ns.first = (ns.first - modules.datetime.timedelta(days=1)).replace(day=1) -%}
        {%- endfor -%}
        {{ return(column ~ " >= cast('" ~ ns.first ~ "' as date)") }}
    {%- elif modules.re.fullmatch('\\d{4}-\\d{2}-\\d{2}(,\\d{4}-\\d{2}-\\d{2})*', recorded) -%}
        {{ return(column ~ ' in ' ~ date_literals(recorded.split(','))) }}
    {%- endif -%}
    {{ return('true') }}
{%- endmacro %}


{#- What the latest build of a state='table' model (graph node) recorded as recomputed in its
    _incremental_builds row ('all', 'none', dates, 'months from ...'), or none. -#}
{% macro recorded_recomputed(node) -%}
    {%- set state = snapshot_build_state_relation(node.database, node.schema) -%}
    {%- set recorded = run_query(
        "select recomputed from " ~ state ~ " where model_name = '" ~ (node.alias or node.name) ~ "'"
    ).columns[0].values() -%}
    {{ return(recorded[0] if recorded | length == 1 else none) }}
{%- endmacro %}
