"""Health and loyalty in marts.account_snapshots on the generated data (rules: DECISIONLOG.md,
"Health and loyalty"; each rule's edges are dbt unit tests in _int__unit_tests.yml).

Every active account has a score and a stage, an inactive one none; no component is the same
for every account; adoption follows the usage declaration without a full refresh.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

COMPONENTS = ["health_adoption", "health_engagement", "health_support", "health_sentiment"]
HEALTH = [*COMPONENTS, "health_score", "loyalty_stage"]


def _latest(dbt, warehouse: Path):
    return dbt.read(
        warehouse,
        "select * from marts.account_snapshots "
        "where snapshot_date = (select max(snapshot_date) from marts.account_snapshots)",
    )


def test_every_active_account_has_health_and_a_stage(dbt, built_warehouse: Path) -> None:
    frame = _latest(dbt, built_warehouse)
    active, inactive = frame[frame["is_active"]], frame[~frame["is_active"]]
    assert len(active) > 20
    for column in ["health_adoption", "health_engagement", "health_support", "health_score"]:
        assert active[column].notna().all(), column
    for column in [*COMPONENTS, "health_score"]:
        values = active[column].dropna()
        assert values.between(0, 100).all(), column
        assert values.nunique() > 1, f"{column} is the same for every active account"
    assert set(active["loyalty_stage"]) <= {"new", "repeater", "promoter", "fan"}
    assert active["loyalty_stage"].nunique() > 1
    assert inactive[HEALTH].isna().all().all()
    # the score is the rounded mean (halves up) of the components that are known
    mean = active[COMPONENTS].mean(axis=1, skipna=True)
    assert ((mean + 0.5).astype(int) == active["health_score"]).all()


def test_adoption_follows_the_declaration(dbt, built_warehouse: Path, tmp_path: Path) -> None:
    warehouse = dbt.copy(built_warehouse, tmp_path)
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("delete from raw.config__usage_metrics")
    finally:
        con.close()
    dbt.run(
        [
            "run",
            "--select",
            "stg_config__usage_metrics",
            "account_metric_snapshots",
            "int_account_health_snapshotted",
            "account_snapshots",
        ],
        tmp_path,
        warehouse=warehouse,
    )
    frame = _latest(dbt, warehouse)
    active = frame[frame["is_active"]]
    assert active["health_adoption"].isna().all()
    others = active[["health_engagement", "health_support", "health_sentiment"]]
    assert ((others.mean(axis=1, skipna=True) + 0.5).astype(int) == active["health_score"]).all()
