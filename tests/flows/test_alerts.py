from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from flows.modelling.score import record_alerts
from flows.settings import Settings

ROWS = "(account_id varchar, account_name varchar, owner_name varchar, as_of date, touch_tier varchar, p_expansion double, is_suppressed boolean, next_best_offer varchar, reason_1 varchar, run_id varchar, scored_at timestamp)"


def _scores(
    con: duckdb.DuckDBPyConnection, run_id: str, rows: list[tuple[str, str, float, bool]], at: str
) -> None:
    con.execute("create schema if not exists scores")
    con.execute(f"create or replace table scores.account_scores {ROWS}")
    con.execute(f"create table if not exists scores.account_score_history {ROWS}")
    for account, tier, p, suppressed in rows:
        values = [
            account,
            f"Name {account}",
            "Jo",
            "2026-10-31",
            tier,
            p,
            suppressed,
            "upsell: more seats",
            "seats at 92% of plan",
            run_id,
            at,
        ]
        con.execute(
            "insert into scores.account_scores values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values
        )
        con.execute(
            "insert into scores.account_score_history values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, alert_probability_threshold=0.3)


def test_alerts_on_tier_up_and_threshold_crossing_only(settings: Settings) -> None:
    con = duckdb.connect(str(settings.warehouse))
    _scores(
        con,
        "r1",
        [
            ("A", "tech_touch", 0.1, False),
            ("B", "low_touch", 0.2, False),
            ("C", "high_touch", 0.5, False),
            ("D", "tech_touch", 0.1, True),
        ],
        "2026-10-30",
    )
    con.close()
    assert record_alerts(settings, "r1") == 0  # nothing to compare with yet

    con = duckdb.connect(str(settings.warehouse))
    _scores(
        con,
        "r2",
        [
            ("A", "low_touch", 0.15, False),  # tier up
            ("B", "low_touch", 0.35, False),  # crossed 0.3
            ("C", "low_touch", 0.6, False),  # tier down: no alert
            ("D", "high_touch", 0.9, True),
        ],  # suppressed: never alerted
        "2026-10-31",
    )
    con.close()
    assert record_alerts(settings, "r2") == 2
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    alerts = con.execute(
        "select account_id, alert_type, previous_value, current_value from scores.account_alerts order by 1"
    ).fetchall()
    con.close()
    assert alerts == [
        ("A", "tier_up", "tech_touch", "low_touch"),
        ("B", "probability_crossed", "0.2", "0.35"),
    ]
    assert record_alerts(settings, "r2") == 2  # re-running the same run replaces, not duplicates
