"""The DDL of the pipeline's own tables in the warehouse, in one place.

Not the raw tables (one per contract table, made from `flows/ingest/contract.py`) nor what
dbt builds: the ledgers and records the pipeline keeps beside them. `ensure(con, *names)`
creates what is missing; every statement is idempotent (`if not exists`), and columns added
after a table first shipped come as `add column if not exists`, so an older warehouse is
brought up to date.
"""

from __future__ import annotations

from duckdb import DuckDBPyConnection

# The score tables' columns and types, declared (never inferred from a first date's values: a
# column empty on that date would get DuckDB's type NULL). models.score.SCORE_COLUMNS, then the
# account's name, owner and segment, then when and by which run it was scored.
SCORE_COLUMNS: dict[str, str] = {
    "account_id": "varchar",
    "as_of": "date",
    "p_expansion": "double",
    "p_upsell": "double",
    "p_cross_sell": "double",
    "decile": "integer",
    "offer_type": "varchar",
    "next_best_offer": "varchar",
    "offer_mrr": "double",
    "expected_expansion_mrr": "double",
    "reporting_currency": "varchar",
    "action_rank": "integer",
    "touch_tier": "varchar",
    "is_suppressed": "boolean",
    "suppression_reason": "varchar",
    "health_score": "integer",
    "health_adoption": "integer",
    "health_engagement": "integer",
    "health_support": "integer",
    "health_sentiment": "integer",
    "loyalty_stage": "varchar",
    "reason_1": "varchar",
    "reason_2": "varchar",
    "reason_3": "varchar",
    "reason_codes": "varchar",
    "model_version": "varchar",
    "account_name": "varchar",
    "owner_name": "varchar",
    "segment": "varchar",
    "scored_at": "timestamp",
    "run_id": "varchar",
}
# Score columns renamed since they first shipped: old name -> new name (history tables keep
# their rows; amounts before the rename were in USD).
RENAMED_SCORE_COLUMNS: dict[str, str] = {
    "offer_mrr_usd": "offer_mrr",
    "expected_expansion_mrr_usd": "expected_expansion_mrr",
}


def _score_table(name: str) -> list[str]:
    columns = ", ".join(f'"{c}" {t}' for c, t in SCORE_COLUMNS.items())
    return [
        f"create table if not exists {name} ({columns})",
        *(
            f'alter table {name} add column if not exists "{c}" {t}'
            for c, t in SCORE_COLUMNS.items()
        ),
    ]


TABLES: dict[str, list[str]] = {
    # this run's scores, and one row per account per as_of date (flows/modelling/score.py)
    "scores.account_scores": _score_table("scores.account_scores"),
    "scores.account_score_history": _score_table("scores.account_score_history"),
    # every extract loaded: file, rows, checksum, watermark and run (flows/ingest)
    "raw._load_ledger": [
        """create table if not exists raw._load_ledger (
            run_id varchar, table_name varchar, file_path varchar, sha256 varchar,
            row_count bigint, loaded_at timestamp
        )""",
        "alter table raw._load_ledger add column if not exists watermark varchar",
        "alter table raw._load_ledger add column if not exists status varchar",
        "alter table raw._load_ledger add column if not exists quarantined_rows bigint",
    ],
    # rows and files that broke the contract, rejected or quarantined (flows/ingest)
    "raw._quarantine": [
        """create table if not exists raw._quarantine (
            run_id varchar, table_name varchar, source_file varchar, row_number bigint,
            column_name varchar, value varchar, reason varchar, disposition varchar,
            recorded_at timestamp
        )"""
    ],
    # load runs whose raw rows passed the raw gate (flows/quality/raw_checked.py)
    "quality.raw_checked": [
        "create table if not exists quality.raw_checked (run_id varchar, checked_at timestamp)"
    ],
    # each suite's row count and outcome per run (flows/quality/gates.py)
    "quality.gate_history": [
        """create table if not exists quality.gate_history (
            run_id varchar, as_of date, edge varchar, suite varchar, table_name varchar,
            row_count bigint, passed boolean, critical_failures integer,
            warning_failures integer, validated_at timestamp
        )"""
    ],
    # alerts on change since the previous scoring run (flows/modelling/score.py)
    "scores.account_alerts": [
        """create table if not exists scores.account_alerts (
            alert_id varchar, run_id varchar, as_of date, account_id varchar,
            account_name varchar, owner_name varchar, alert_type varchar,
            previous_value varchar, current_value varchar, p_expansion double,
            next_best_offer varchar, reason_1 varchar, created_at timestamp
        )"""
    ],
    # what each destination last accepted, each sync run, each rejected record (flows/delivery)
    "sync.record_state": [
        """create table if not exists sync.record_state (
            sync_name varchar, record_key varchar, record_hash varchar, run_id varchar,
            synced_at timestamp
        )"""
    ],
    "sync.runs": [
        """create table if not exists sync.runs (
            run_id varchar, sync_name varchar, started_at timestamp, finished_at timestamp,
            status varchar, dry_run boolean, rows_in bigint, inserted bigint, updated bigint,
            deleted bigint, unchanged bigint, failed bigint, error varchar
        )""",
        "alter table sync.runs add column if not exists skipped bigint",
        "alter table sync.runs add column if not exists full_resync boolean",
    ],
    "sync.failed_records": [
        """create table if not exists sync.failed_records (
            run_id varchar, sync_name varchar, record_key varchar, operation varchar,
            reason varchar, failed_at timestamp
        )"""
    ],
}

SYNC_LEDGER = ("sync.record_state", "sync.runs", "sync.failed_records")
LOAD_LEDGER = ("raw._load_ledger", "raw._quarantine")


def ensure(con: DuckDBPyConnection, *names: str) -> None:
    """Create the named tables (and their schemas) where they are missing."""
    for name in names:
        con.execute(f"create schema if not exists {name.split('.', 1)[0]}")
        for statement in TABLES[name]:
            con.execute(statement)
