{#-
    Change index of the CRM tables the snapshot models read (macros/record_versions.sql): one
    row per raw row (every loaded version of every record, not only the latest) with its
    table_name, record_id, _loaded_at and affects_from_date, the first snapshot date this
    version of the record can change: the date of its earliest timestamp (a feature counts an
    event on a snapshot date d only when it happened before the end of d). A closed
    opportunity without a close date counts as closed at its last update, so updated_at
    counts for opportunities.

    The incremental snapshot models (macros/snapshot_incremental.sql) take the records that
    got a version loaded since their last build and recompute every snapshot date on or
    after the earliest affects_from_date among *all* versions of those records (the old
    version counted where the new one may not). A version without any timestamp affects
    every date (1900-01-01).
-#}
{{ record_versions('crm', [
    {'name': 'accounts', 'key': 'account_id', 'affects_from': 'created_at'},
    {'name': 'support_tickets', 'key': 'ticket_id', 'affects_from': 'least(opened_at, closed_at)'},
    {'name': 'nps_responses', 'key': 'response_id', 'affects_from': 'responded_at'},
    {'name': 'activities', 'key': 'activity_id', 'affects_from': 'occurred_at'},
    {'name': 'opportunities', 'key': 'opportunity_id', 'affects_from': 'least(created_at, closed_at, updated_at)'},
]) }}
