{#-
    Change index of the billing tables the snapshot models read (macros/record_versions.sql;
    see stg_crm__record_versions for how the incremental snapshot models use it). The first
    snapshot date a version can change:
      customers, plans, products, every date (no affects_from): a customer maps all its
      plan_limits                 subscriptions and invoices to an account, and plans,
                                  products and plan limits give every subscription version
                                  its tier, family, price and limits
      subscriptions               its start or its cancellation, whichever is first
      subscription_changes        its effective_at (a version also ends the one before it, at
                                  the same instant)
      invoices                    its issue, due or payment date, whichever is first (a void
                                  invoice stops counting at its last update, after its issue)
      exchange_rates              its rate_month: a rate converts the versions that took effect
                                  in that month (for their currency, or for the reporting
                                  currency), and they hold from then on
-#}
{{ record_versions('billing', [
    {'name': 'customers', 'key': 'customer_id'},
    {'name': 'plans', 'key': 'plan_id'},
    {'name': 'products', 'key': 'product_id'},
    {'name': 'plan_limits', 'key': "plan_id || ' ' || metric"},
    {'name': 'subscriptions', 'key': 'subscription_id', 'affects_from': 'least(started_at, canceled_at)'},
    {'name': 'subscription_changes', 'key': 'change_id', 'affects_from': 'effective_at'},
    {'name': 'invoices', 'key': 'invoice_id', 'affects_from': 'least(issued_at, due_at, paid_at)'},
    {'name': 'exchange_rates', 'key': "upper(currency) || ' ' || cast(rate_month as varchar)", 'affects_from': 'rate_month'},
]) }}
