"""The benchmark's synthetic day: usage and CRM activities of the same weekday a week before,
moved to the new day, so a run of several such days does not age every account's activity."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from bench.scenarios import append_day


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demo import generate

    root = tmp_path_factory.mktemp("bench-day")
    generate(root / "landing", root / "oracle", accounts=40, months=3, seed=3)
    return root / "landing"


def _activities(folder: Path, day: date) -> list[tuple]:
    return duckdb.sql(
        f"select account_id, activity_type, occurred_at, activity_id "
        f"from read_csv('{folder}/*.csv', header = true, types = "
        f"{{'activity_id': 'VARCHAR', 'account_id': 'VARCHAR'}}) "
        f"where cast(occurred_at as date) = '{day}' order by all"
    ).fetchall()


def test_a_new_day_brings_usage_and_the_activities_of_a_week_before(landing: Path) -> None:
    from flows.ingest.load import load_landing
    from flows.warehouse import Warehouse

    folder = landing / "crm" / "activities"
    day = date.fromisoformat(append_day(landing))
    week_before = date.fromordinal(day.toordinal() - 7)
    new = _activities(folder, day)
    old = _activities(folder, week_before)
    assert old, "the demo has activities on every weekday"
    assert [r[:2] for r in new] == [r[:2] for r in old]
    assert all(r[3].startswith(f"b{day.strftime('%Y%m%d')}-") for r in new)
    assert (landing / "usage" / "usage_daily" / f"usage_daily_{day}.parquet").exists()
    # the loader takes the new file as it is: the ids are new, the types the contract's
    warehouse = Warehouse(landing.parent / "warehouse.duckdb", memory_limit="1GB")
    load_landing(landing, warehouse, "bench-day")
    with warehouse.connect(read_only=True) as con:
        ((n,),) = con.execute(
            "select count(*) from raw.crm__activities where cast(occurred_at as date) = ?", [day]
        ).fetchall()
    assert n == len(new)
