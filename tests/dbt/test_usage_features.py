"""marts.account_features follows the usage-metric declaration (raw.config__usage_metrics).

One column `<metric>__<stat>` per declared metric and stat, equal to the metric's row of
account_metric_snapshots; no usage column (and no failure) when nothing is declared; a
declared name that needs quoting still gives its columns.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

# the declaration's staging table (staging models are tables: they see raw when built), then
# the marts that read it
MARTS = [
    "run",
    "--select",
    "stg_config__usage_metrics",
    "account_metric_snapshots",
    "account_snapshots",
    "account_features",
]


def _columns(dbt, warehouse: Path, relation: str) -> list[str]:
    return list(dbt.read(warehouse, f"select * from {relation} limit 0").columns)


def _declare(warehouse: Path, sql: str) -> None:
    con = duckdb.connect(str(warehouse))
    try:
        con.execute(sql)
    finally:
        con.close()


def test_a_column_per_declared_metric_and_stat(dbt, built_warehouse: Path) -> None:
    declared = dbt.read(built_warehouse, "select metric from raw.config__usage_metrics")
    snapshot_columns = _columns(dbt, built_warehouse, "marts.account_snapshots")
    features = _columns(dbt, built_warehouse, "marts.account_features")
    assert features[: len(snapshot_columns)] == snapshot_columns
    usage = features[len(snapshot_columns) :]
    assert {c.split("__")[0] for c in usage} == set(declared["metric"])

    long = dbt.read(built_warehouse, "select * from marts.account_metric_snapshots")
    wide = dbt.read(built_warehouse, "select * from marts.account_features")
    source = {"7d": "value_7d", "30d": "value_30d", "90d": "value_90d", "latest": "latest_value"}
    for column in usage:
        metric, stat = column.split("__")
        rows = long[long["metric"] == metric][
            ["account_id", "snapshot_date", source.get(stat, stat)]
        ]
        merged = wide[["account_id", "snapshot_date", column]].merge(
            rows, on=["account_id", "snapshot_date"]
        )
        assert len(merged) == len(wide)
        pd.testing.assert_series_equal(
            merged[column], merged[source.get(stat, stat)], check_names=False, check_dtype=False
        )


def test_no_declared_metric_gives_the_snapshot_columns(
    dbt, built_warehouse: Path, tmp_path: Path
) -> None:
    warehouse = dbt.copy(built_warehouse, tmp_path)
    _declare(warehouse, "delete from raw.config__usage_metrics")
    dbt.run(MARTS, tmp_path, warehouse=warehouse)
    assert _columns(dbt, warehouse, "marts.account_features") == _columns(
        dbt, warehouse, "marts.account_snapshots"
    )
    counts = dbt.read(
        warehouse,
        "select (select count(*) from marts.account_metric_snapshots) as metric_rows, "
        "(select count(*) from marts.account_features) as feature_rows, "
        "(select count(*) from marts.account_snapshots) as snapshot_rows, "
        "(select count(max_limit_utilization) from marts.account_snapshots) as limited_rows",
    ).iloc[0]
    assert counts["metric_rows"] == 0 and counts["limited_rows"] == 0
    assert counts["feature_rows"] == counts["snapshot_rows"] > 0


def test_a_name_that_needs_quoting_keeps_its_columns(
    dbt, built_warehouse: Path, tmp_path: Path
) -> None:
    warehouse = dbt.copy(built_warehouse, tmp_path)
    name = """it's "odd\""""
    _declare(
        warehouse,
        "insert into raw.config__usage_metrics values "
        """('it''s "odd"', 'level', 'held', 'odd', 'units', 'a name with quotes')""",
    )
    dbt.run(MARTS, tmp_path, warehouse=warehouse)
    features = _columns(dbt, warehouse, "marts.account_features")
    assert [c for c in features if c.startswith(name)] == [
        f"{name}__latest",
        f"{name}__30d",
        f"{name}__trend_28d",
        f"{name}__utilization",
    ]
