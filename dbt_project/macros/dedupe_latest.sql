{#-
    Raw tables are append-only history: the same key can arrive in several loads.
    Keep the latest version of each key: the highest `updated_at` (when the table has one),
    then the latest load (`_loaded_at`), then the latest file name as a final tie-break.
    Use as the last clause of a select: `select ... from source {{ dedupe_latest(['id'], 'updated_at') }}`.
-#}
{% macro dedupe_latest(key_columns, updated_at=none) -%}
    qualify row_number() over (
        partition by {{ key_columns | join(', ') }}
        order by
            {% if updated_at is not none -%} {{ updated_at }} desc nulls last, {% endif -%}
            _loaded_at desc nulls last,
            _source_file desc nulls last
    ) = 1
{%- endmacro %}
