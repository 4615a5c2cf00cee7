"""A marts suite with `meta.when: "training"` gates only runs that train a model: a scoring
run with a champion trained elsewhere needs no label-complete history."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows.errors import GateFailed
from flows.quality import gates
from flows.settings import Settings

AS_OF = date(2026, 10, 31)


def _suite(name: str, where: str, **meta: str) -> dict:
    return {
        "name": name,
        "meta": {"table": "marts.account_snapshots", "edge": "marts", "where": where, **meta},
        "expectations": [
            {
                "type": "expect_table_row_count_to_be_between",
                "kwargs": {"min_value": 1},
                "meta": {"severity": "critical"},
            }
        ],
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    suites = tmp_path / "expectations"
    suites.mkdir()
    for spec in (
        _suite("marts_all", "true"),
        _suite("marts_training", "is_label_complete", when="training"),
    ):
        (suites / f"{spec['name']}.json").write_text(json.dumps(spec))
    settings = Settings(home=tmp_path / "state", expectations_dir=suites)
    settings.warehouse.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute("create schema marts")
        # three months of history: nothing label-complete yet
        con.execute(
            "create table marts.account_snapshots as select 'a1' as account_id, "
            "date '2026-10-31' as snapshot_date, false as is_label_complete"
        )
    return settings


def test_a_scoring_run_skips_the_training_suite(settings: Settings) -> None:
    results = gates.validate_marts(settings, AS_OF, "r1", training=False)
    assert [r.suite for r in results] == ["marts_all"]


def test_a_training_run_applies_it(settings: Settings) -> None:
    with pytest.raises(GateFailed, match="marts_training"):
        gates.validate_marts(settings, AS_OF, "r2", training=True)
    # no champion: this run would train, so the suite applies by default
    with pytest.raises(GateFailed, match="marts_training"):
        gates.validate_marts(settings, AS_OF, "r3")


def test_when_takes_one_value(settings: Settings) -> None:
    path = settings.expectations / "marts_training.json"
    spec = json.loads(path.read_text())
    spec["meta"]["when"] = "scoring"
    path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=r"meta.when='scoring'; expected 'training'"):
        gates.validate_marts(settings, AS_OF, "r4", training=True)
