{#- Every row satisfies `expression` (a boolean SQL expression on the model's columns). -#}
{% test expression_is_true(model, expression, column_name=none) %}
    select *
    from {{ model }}
    where not coalesce(({{ expression }}), false)
{% endtest %}
