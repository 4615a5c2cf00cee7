"""The score tables' types do not depend on the first date's values."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from flows.modelling.score import write_scores
from flows.warehouse import Warehouse, table_columns


def _scores(as_of: date, suppression: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["a1", "a2"],
            "p_expansion": [0.2, 0.4],
            "suppression_reason": pd.Series(suppression, dtype=object),
            "as_of": [as_of, as_of],
        }
    )


def test_a_first_date_without_a_value_does_not_fix_a_null_type(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as con:
        con.execute("create schema scores")
        write_scores(con, _scores(date(2026, 1, 31), [None, None]), date(2026, 1, 31))
        assert table_columns(con, "scores.account_score_history")["suppression_reason"] == (
            "VARCHAR"
        )
        write_scores(
            con, _scores(date(2026, 2, 28), ["open urgent ticket", None]), date(2026, 2, 28)
        )
        rows = con.execute(
            "select as_of, suppression_reason from scores.account_score_history "
            "order by as_of, account_id"
        ).fetchall()
    assert [r[1] for r in rows] == [None, None, "open urgent ticket", None]


def test_a_history_left_null_typed_by_an_earlier_run_is_repaired(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as con:
        con.execute("create schema scores")
        first = _scores(date(2026, 1, 31), [None, None])
        con.register("first", first)
        con.execute("create table scores.account_score_history as select * from first")
        assert table_columns(con, "scores.account_score_history")["suppression_reason"] == (
            '"NULL"'
        )
        write_scores(
            con, _scores(date(2026, 2, 28), ["recent contraction", None]), date(2026, 2, 28)
        )
        count = con.execute(
            "select count(*) from scores.account_score_history where suppression_reason is not null"
        ).fetchone()
    assert count == (1,)
