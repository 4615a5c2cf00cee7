"""A daily marts gate checks row by row the rows the latest build rewrote (the dates or months
its `_incremental_builds.recomputed` names), row counts and other table-wide expectations on
the whole table; after a build whose marts never passed the gate, it checks whole tables
(flows/quality/scope.py)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows.errors import GateFailed
from flows.quality import gates
from flows.quality.scope import begin_marts_build, marts_gated, parse_recomputed, row_local
from flows.settings import Settings

AS_OF = date(2026, 11, 2)


def _expectation(kind: str, **kwargs: object) -> dict:
    return {"type": kind, "kwargs": kwargs, "meta": {"severity": "critical"}}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    suites = tmp_path / "expectations"
    suites.mkdir()
    spec = {
        "name": "marts_snapshots",
        "meta": {
            "table": "marts.snapshots",
            "edge": "marts",
            "row_id": ["account_id", "snapshot_date"],
        },
        "expectations": [
            _expectation("expect_table_row_count_to_be_between", min_value=6),
            _expectation(
                "expect_compound_columns_to_be_unique", column_list=["account_id", "snapshot_date"]
            ),
            _expectation("expect_column_values_to_not_be_null", column="mrr"),
            _expectation(
                "expect_column_max_to_be_between",
                column="snapshot_date",
                max_value={"$PARAMETER": "as_of"},
            ),
        ],
    }
    (suites / "marts_snapshots.json").write_text(json.dumps(spec))
    settings = Settings(home=tmp_path / "state", expectations_dir=suites)
    settings.warehouse.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute("create schema marts")
        # three accounts on two dates; the latest build rewrote 2026-11-02 only
        con.execute(
            "create table marts.snapshots as select 'a' || i as account_id, d as snapshot_date, "
            "10.0 as mrr from range(3) t(i), (values (date '2026-10-31'), (date '2026-11-02')) s(d)"
        )
        con.execute(
            "create table marts._incremental_builds (model_name varchar, recomputed varchar)"
        )
        con.execute("insert into marts._incremental_builds values ('snapshots', '2026-11-02')")
    return settings


def _sql(settings: Settings, sql: str) -> None:
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute(sql)


def test_rows_the_build_rewrote_are_checked_row_by_row_the_table_as_a_whole(
    settings: Settings,
) -> None:
    # a bad row in a date the build did not rewrite: the gate that passed it before stands
    _sql(settings, "update marts.snapshots set mrr = null where snapshot_date = '2026-10-31'")
    (result,) = gates.validate_marts(settings, AS_OF, "r1", training=False, rewritten_only=True)
    assert result.passed and result.rows == 6  # the row count is the whole table's
    assert result.scope and "3 rows of snapshot_date 2026-11-02" in result.scope
    # the whole table (the default) finds it
    with pytest.raises(GateFailed, match="mrr"):
        gates.validate_marts(settings, AS_OF, "r2", training=False)


def test_a_bad_rewritten_row_and_a_table_wide_failure_are_found(settings: Settings) -> None:
    _sql(
        settings,
        "update marts.snapshots set mrr = null where snapshot_date = '2026-11-02' and account_id = 'a1'",
    )
    with pytest.raises(GateFailed) as failed:
        gates.validate_marts(settings, AS_OF, "r1", training=False, rewritten_only=True)
    (bad,) = failed.value.results[0].critical
    assert bad.column == "mrr" and bad.example_rows[0]["account_id"] == "a1"
    # a row count below the minimum counts the whole table, not the rewritten rows
    _sql(settings, "update marts.snapshots set mrr = 1")
    _sql(settings, "delete from marts.snapshots where snapshot_date = '2026-10-31'")
    with pytest.raises(GateFailed, match="expect_table_row_count_to_be_between"):
        gates.validate_marts(settings, AS_OF, "r2", training=False, rewritten_only=True)


def test_unknown_rewrites_check_the_whole_table(settings: Settings) -> None:
    _sql(settings, "update marts.snapshots set mrr = null where snapshot_date = '2026-10-31'")
    for recomputed in ("all", None, "a date nobody wrote"):
        _sql(settings, "delete from marts._incremental_builds")
        _sql(
            settings,
            f"insert into marts._incremental_builds values ('snapshots', {recomputed!r})".replace(
                "None", "null"
            ),
        )
        with pytest.raises(GateFailed, match="mrr"):
            gates.validate_marts(settings, AS_OF, "r1", training=False, rewritten_only=True)


def test_recomputed_values_and_the_expectations_they_scope() -> None:
    dates = parse_recomputed("2026-10-31,2026-11-02")
    assert dates and dates.key == "snapshot_date"
    assert dates.where == "snapshot_date in (date '2026-10-31', date '2026-11-02')"
    months = parse_recomputed("months from 2026-11-01")
    assert months and months.where == "month_start >= date '2026-11-01'"
    none = parse_recomputed("none")
    assert none and none.where == "false"
    assert parse_recomputed("all") is None and parse_recomputed("2026-13-01") is None

    key = "snapshot_date"
    assert row_local(_expectation("expect_column_values_to_be_between", column="x"), key)
    assert row_local(
        _expectation("expect_compound_columns_to_be_unique", column_list=["a", key]), key
    )
    # a duplicate can sit in two dates: uniqueness without the key is table-wide
    assert not row_local(
        _expectation("expect_compound_columns_to_be_unique", column_list=["a"]), key
    )
    assert not row_local(_expectation("expect_column_values_to_be_unique", column="a"), key)
    assert not row_local(_expectation("expect_column_mean_to_be_between", column="a"), key)
    assert not row_local(_expectation("expect_table_row_count_to_be_between", min_value=1), key)


def test_a_build_whose_marts_were_never_gated_widens_the_next_gate(settings: Settings) -> None:
    assert begin_marts_build(settings)  # nothing built before
    assert not begin_marts_build(settings)  # the last build's marts were never gated
    marts_gated(settings)
    assert begin_marts_build(settings)
    # a failing gate leaves the marts ungated; a passing one marks them gated
    _sql(settings, "update marts.snapshots set mrr = null")
    with pytest.raises(GateFailed):
        gates.validate_marts(settings, AS_OF, "r1", training=False, rewritten_only=True)
    assert not begin_marts_build(settings)
    _sql(settings, "update marts.snapshots set mrr = 1")
    gates.validate_marts(settings, AS_OF, "r2", training=False, rewritten_only=True)
    assert begin_marts_build(settings)
