from __future__ import annotations

from pathlib import Path

import duckdb

from flows.delivery.publish import PUBLISHED, publish
from flows.warehouse import Warehouse


def _warehouse(path: Path, n_scores: int) -> Path:
    con = duckdb.connect(str(path))
    for relation in PUBLISHED.values():
        schema = relation.split(".")[0]
        con.execute(f"create schema if not exists {schema}")
        con.execute(
            f"create or replace table {relation} as select range as id from range({n_scores})"
        )
    con.close()
    return path


def test_publish_swaps_a_complete_file_that_old_readers_keep(tmp_path: Path) -> None:
    wh = _warehouse(tmp_path / "wh.duckdb", 3)
    serving = tmp_path / "serving"
    publish(Warehouse(wh), serving, "run-1", "2026-10-31", "v1")
    reader = duckdb.connect(str(serving / "expansion.duckdb"), read_only=True)
    assert reader.execute("select count(*) from account_scores").fetchone()[0] == 3

    _warehouse(wh, 5)
    report = publish(
        Warehouse(wh), serving, "run-2", "2026-10-31", "v2"
    )  # a reader holds the old file
    assert reader.execute("select count(*) from account_scores").fetchone()[0] == 3
    reader.close()

    fresh = duckdb.connect(str(serving / "expansion.duckdb"), read_only=True)
    assert fresh.execute("select count(*) from account_scores").fetchone()[0] == 5
    assert fresh.execute("select model_version from _publication").fetchone()[0] == "v2"
    tags = fresh.execute(
        "select tags from duckdb_databases() where database_name = 'expansion'"
    ).fetchone()
    fresh.close()
    assert "v1.0.0" in str(tags)
    assert report.rows["account_scores"] == 5
    current = serving / "parquet" / "current"
    assert current.is_symlink() and (current / "account_scores.parquet").exists()
    assert duckdb.sql(f"select count(*) from '{current}/account_scores.parquet'").fetchall() == [
        (5,)
    ]
    assert not list(serving.glob(".*.tmp"))


def test_a_quote_in_the_serving_folder_is_a_quote_not_sql(tmp_path: Path) -> None:
    folder = tmp_path / "it's served"
    folder.mkdir()
    warehouse = _warehouse(folder / "warehouse.duckdb", 3)
    report = publish(Warehouse(warehouse), folder / "serving", "run-1", "2026-10-31", "v0001")
    con = duckdb.connect(str(report.serving_db), read_only=True)
    try:
        assert con.execute("select count(*) from account_scores").fetchone() == (3,)
    finally:
        con.close()


def test_a_backfill_before_anything_was_published_publishes_its_history(
    tmp_path: Path,
) -> None:
    """A new customer's first command may be a backfill: no serving file to keep yet."""
    wh = _warehouse(tmp_path / "wh.duckdb", 4)
    with duckdb.connect(str(wh)) as con:
        con.execute("drop table scores.account_alerts")  # only daily runs write alerts
        con.execute("drop table scores.model_metrics")  # a backfill model is never promoted
    serving = tmp_path / "serving"
    report = publish(Warehouse(wh), serving, "backfill-1", "2026-06-30", "v1", history_only=True)
    assert report.rows["account_score_history"] == 4
    assert report.rows["account_scores"] == 0 and report.rows["accounts"] == 0
    assert "model_metrics" not in report.rows
    con = duckdb.connect(report.serving_db, read_only=True)
    try:
        assert con.execute("select as_of, model_version from _publication").fetchall() == [
            (None, None)
        ]
        assert con.execute("select count(*) from account_alerts").fetchone() == (0,)
    finally:
        con.close()
    # the next backfill keeps what the first one published, and adds its own history
    _warehouse(wh, 6)
    again = publish(Warehouse(wh), serving, "backfill-2", "2026-07-31", "v2", history_only=True)
    assert again.rows["account_score_history"] == 6 and again.rows["account_scores"] == 0
