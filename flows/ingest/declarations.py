"""The business declaration (config/business.yml) in the warehouse, for the loader and dbt.

The loader checks `vocabulary` columns of the contract (usage metric names) against a temp
table of the declared names; each successful load also replaces `raw.config__usage_metrics`,
the declaration dbt reads (source `config.usage_metrics`), in the load's own transaction.
"""

from __future__ import annotations

from flows.warehouse import Connection
from models.business import Business

DECLARATIONS_TABLE = "raw.config__usage_metrics"


def vocabularies(business: Business) -> dict[str, list[str]]:
    """Each vocabulary of the contract (flows/ingest/contract.py VOCABULARIES) -> its names."""
    return {
        "usage_metrics": business.metric_names,
        "limited_usage_metrics": business.limited_metric_names,
    }


def register_vocabularies(con: Connection, business: Business) -> None:
    """The temp table `_vocabulary (vocabulary, value)` the contract's checks read."""
    con.execute("create or replace temp table _vocabulary (vocabulary varchar, value varchar)")
    pairs = [(name, value) for name, values in vocabularies(business).items() for value in values]
    if pairs:
        con.executemany("insert into _vocabulary values (?, ?)", pairs)


def write_declarations(con: Connection, business: Business) -> None:
    """Replace `raw.config__usage_metrics`: one row per declared metric (name, aggregation,
    limit_period, label and unit in English, description)."""
    con.execute(
        f"create or replace table {DECLARATIONS_TABLE} ("
        "metric varchar not null primary key, aggregation varchar not null, "
        "limit_period varchar, label varchar not null, unit varchar not null, "
        "description varchar not null)"
    )
    con.executemany(
        f"insert into {DECLARATIONS_TABLE} values (?, ?, ?, ?, ?, ?)",
        [
            (
                m.name,
                m.aggregation,
                m.limit_period,
                m.label_in("en"),
                m.unit_in("en"),
                m.description,
            )
            for m in business.usage_metrics
        ],
    )
