{#-
    The combination of `combination_of_columns` is unique across the model
    (dbt_utils.unique_combination_of_columns, written here because packages cannot be installed).
    Returns one row per duplicated combination.
-#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
    select
        {{ combination_of_columns | join(', ') }},
        count(*) as n_rows
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}
    having count(*) > 1
{% endtest %}
