"""Alerts on change between two scoring runs (models/alerts.py)."""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.alerts import (
    ALERT_COLUMNS,
    alert_id,
    alerts_on_change,
    probability_text,
    tier_ranks,
)
from models.params import TouchTier, TouchTiers, load_params

TIERS = load_params().touch_tiers  # high_touch, low_touch; default tech_touch
AS_OF = date(2026, 10, 31)


def _current(rows: list[tuple[str, str | None, float, bool | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "as_of": AS_OF,
            "account_name": [f"Name {r[0]}" for r in rows],
            "owner_name": "Jo",
            "touch_tier": [r[1] for r in rows],
            "p_expansion": [r[2] for r in rows],
            "is_suppressed": pd.array([r[3] for r in rows], dtype="boolean"),
            "next_best_offer": "upsell: more seats",
            "reason_1": "seats at 92% of plan",
        }
    )


def _previous(rows: list[tuple[str, str | None, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["account_id", "touch_tier", "p_expansion"])


def _pairs(alerts: pd.DataFrame) -> list[tuple[str, str, object, object]]:
    return list(
        alerts[["account_id", "alert_type", "previous_value", "current_value"]].itertuples(
            index=False, name=None
        )
    )


def test_tier_up_only_when_the_tier_ranks_higher() -> None:
    previous = _previous(
        [
            ("A", "tech_touch", 0.1),
            ("B", "low_touch", 0.1),
            ("C", "high_touch", 0.1),
            ("D", "low_touch", 0.1),
            ("E", None, 0.1),
        ]
    )
    current = _current(
        [
            ("A", "low_touch", 0.1, False),  # up
            ("B", "low_touch", 0.1, False),  # equal: no alert
            ("C", "low_touch", 0.1, False),  # down: no alert
            ("D", "high_touch", 0.1, False),  # up
            ("E", "high_touch", 0.1, False),  # from no tier: up
        ]
    )
    alerts = alerts_on_change(current, previous, 0.3, touch_tiers=TIERS)
    assert _pairs(alerts) == [
        ("A", "tier_up", "tech_touch", "low_touch"),
        ("D", "tier_up", "low_touch", "high_touch"),
        ("E", "tier_up", None, "high_touch"),
    ]


def test_probability_crossing_from_below_including_exactly_at_the_threshold() -> None:
    previous = _previous(
        [
            ("A", "tech_touch", 0.2),
            ("B", "tech_touch", 0.3),
            ("C", "tech_touch", 0.29),
            ("D", "tech_touch", 0.5),
        ]
    )
    current = _current(
        [
            ("A", "tech_touch", 0.3, False),  # reaches the threshold exactly: crossed
            ("B", "tech_touch", 0.5, False),  # was already at the threshold: not crossed
            ("C", "tech_touch", 0.2999, False),  # still below
            ("D", "tech_touch", 0.1, False),  # fell: no alert
        ]
    )
    alerts = alerts_on_change(current, previous, 0.3, touch_tiers=TIERS)
    assert _pairs(alerts) == [("A", "probability_crossed", "0.2", "0.3")]


def test_suppressed_new_and_missing_values_never_alert() -> None:
    previous = _previous(
        [
            ("S", "tech_touch", 0.1),
            ("U", "tech_touch", 0.1),
            ("N1", "tech_touch", np.nan),
            ("N2", "tech_touch", 0.1),
            ("G", "tech_touch", 0.1),  # not scored this run
        ]
    )
    current = _current(
        [
            ("S", "high_touch", 0.9, True),  # suppressed
            ("U", "high_touch", 0.9, None),  # suppression unknown: treated as suppressed
            ("N1", "tech_touch", 0.9, False),  # no previous probability
            ("N2", "tech_touch", np.nan, False),  # no probability now
            ("NEW", "high_touch", 0.9, False),  # new in this run: nothing to compare with
        ]
    )
    alerts = alerts_on_change(current, previous, 0.3, touch_tiers=TIERS)
    assert alerts.empty
    assert list(alerts.columns) == ALERT_COLUMNS


def test_an_account_can_get_both_alerts_with_the_rows_the_table_holds() -> None:
    previous = _previous([("A", "tech_touch", 0.12345)])
    current = _current([("A", "high_touch", 0.66666, False)])
    alerts = alerts_on_change(current, previous, 0.3, touch_tiers=TIERS)
    assert list(alerts.columns) == ALERT_COLUMNS
    assert _pairs(alerts) == [
        ("A", "tier_up", "tech_touch", "high_touch"),
        ("A", "probability_crossed", "0.123", "0.667"),
    ]
    first = alerts.iloc[0]
    assert first["alert_id"] == hashlib.md5(b"2026-10-31|A|tier_up").hexdigest()
    assert first["as_of"] == AS_OF and first["p_expansion"] == 0.66666
    assert (first["account_name"], first["owner_name"]) == ("Name A", "Jo")
    assert (first["next_best_offer"], first["reason_1"]) == (
        "upsell: more seats",
        "seats at 92% of plan",
    )


def test_no_previous_run_rows_no_alerts() -> None:
    current = _current([("A", "high_touch", 0.9, False)])
    alerts = alerts_on_change(current, _previous([]), 0.3, touch_tiers=TIERS)
    assert alerts.empty and list(alerts.columns) == ALERT_COLUMNS


def test_missing_columns_are_named() -> None:
    current = _current([("A", "high_touch", 0.9, False)]).drop(columns=["reason_1"])
    with pytest.raises(ValueError, match="reason_1"):
        alerts_on_change(current, _previous([]), 0.3, touch_tiers=TIERS)


def test_tier_order_comes_from_the_params() -> None:
    shipped = tier_ranks(pd.Series(["high_touch", "low_touch", "tech_touch", "other", None]), [
        t.name for t in TIERS.tiers
    ])  # fmt: skip
    assert list(shipped) == [3, 2, 1, 1, 1]  # as the SQL rule of record_alerts ranked them
    renamed = TouchTiers(tiers=[TouchTier(name="gold"), TouchTier(name="silver")], default="bronze")
    alerts = alerts_on_change(
        _current([("A", "gold", 0.1, False), ("B", "silver", 0.1, False)]),
        _previous([("A", "silver", 0.1), ("B", "bronze", 0.1)]),
        0.3,
        touch_tiers=renamed,
    )
    assert _pairs(alerts) == [
        ("A", "tier_up", "silver", "gold"),
        ("B", "tier_up", "bronze", "silver"),
    ]


def test_alert_id_is_the_md5_of_date_account_and_type() -> None:
    expected = hashlib.md5(b"2026-10-31|A|tier_up").hexdigest()
    for as_of in (AS_OF, pd.Timestamp(AS_OF), np.datetime64("2026-10-31"), "2026-10-31"):
        assert alert_id(as_of, "A", "tier_up") == expected
    assert alert_id(None, "A", "tier_up") == hashlib.md5(b"A|tier_up").hexdigest()


def test_probability_text_is_what_duckdb_writes() -> None:
    """cast(round(p, 3) as varchar): half away from zero on the exact binary value."""
    import duckdb

    ties = (np.arange(0, 1000) + 0.5) / 1000
    values = np.concatenate(
        [
            ties,
            np.nextafter(ties, 0),
            np.nextafter(ties, 1),
            np.arange(0, 1001) / 1000,
            np.random.default_rng(0).random(2000),
            [0.0, 1.0, 1e-9, 0.0625, 0.2675],
        ]
    )
    frame = pd.DataFrame({"p": values})
    with duckdb.connect() as con:
        con.register("frame", frame)
        sql = con.execute("select cast(round(p, 3) as varchar) from frame").fetchall()
    assert [probability_text(v) for v in values] == [s for (s,) in sql]
