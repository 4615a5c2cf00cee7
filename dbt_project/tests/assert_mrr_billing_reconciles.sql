{#-
    Every month: the movements bridge's closing MRR equals the MRR of the subscription
    versions held at the month's close, and invoiced MRR plus the named differences
    (mrr_billing_reconciliation) explains all of it. Amounts are doubles: differences under
    one cent pass.
-#}
select
    month_start,
    movements_closing_mrr,
    contracted_mrr,
    unexplained_mrr
from {{ ref('mrr_billing_reconciliation') }}
where abs(movements_closing_mrr - contracted_mrr) >= 0.01
    or abs(unexplained_mrr) >= 0.01
