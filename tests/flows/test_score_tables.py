"""The score tables' columns and types are declared (flows/schemas.py), not taken from the
first date's values, and score tables from before a rename or a NULL type are brought up to date."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from flows.modelling.score import write_scores
from flows.schemas import SCORE_COLUMNS
from flows.warehouse import Warehouse, table_columns


def _scores(as_of: date, suppression: list[str | None]) -> pd.DataFrame:
    n = len(suppression)
    frame = pd.DataFrame({c: pd.Series([None] * n, dtype=object) for c in SCORE_COLUMNS})
    frame["account_id"] = [f"a{i}" for i in range(1, n + 1)]
    frame["as_of"] = as_of
    frame["p_expansion"] = 0.2
    frame["offer_mrr"] = 120.0
    frame["reporting_currency"] = "JPY"
    frame["suppression_reason"] = pd.Series(suppression, dtype=object)
    return frame


def test_every_column_has_its_declared_type_whatever_the_first_date_holds(
    tmp_path: Path,
) -> None:
    with Warehouse(tmp_path / "w.duckdb").connect() as con:
        con.execute("create schema scores")
        write_scores(con, _scores(date(2026, 1, 31), [None, None]), date(2026, 1, 31))
        for table in ("scores.account_scores", "scores.account_score_history"):
            types = table_columns(con, table)
            assert list(types) == list(SCORE_COLUMNS)
            assert types["suppression_reason"] == "VARCHAR" and types["decile"] == "INTEGER"
            assert types["scored_at"] == "TIMESTAMP" and types["owner_name"] == "VARCHAR"
        write_scores(
            con, _scores(date(2026, 2, 28), ["open urgent ticket", None]), date(2026, 2, 28)
        )
        rows = con.execute(
            "select as_of, suppression_reason from scores.account_score_history "
            "order by as_of, account_id"
        ).fetchall()
        current = con.execute("select count(*) from scores.account_scores").fetchone()
    assert [r[1] for r in rows] == [None, None, "open urgent ticket", None]
    assert current == (2,)


def test_scores_that_do_not_match_the_declaration_are_refused(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb").connect() as con:
        con.execute("create schema scores")
        frame = _scores(date(2026, 1, 31), [None]).drop(columns=["reason_3"])
        with pytest.raises(ValueError, match=r"missing \['reason_3'\]"):
            write_scores(con, frame.assign(extra=1), date(2026, 1, 31))
        assert table_columns(con, "scores.account_score_history") == {}


def test_a_history_from_before_is_upgraded_and_keeps_its_rows(tmp_path: Path) -> None:
    """A history left NULL-typed by an earlier run, with the old *_usd amount names."""
    with Warehouse(tmp_path / "w.duckdb").connect() as con:
        con.execute("create schema scores")
        con.execute(
            "create table scores.account_score_history as select 'a1' as account_id, "
            "date '2025-12-31' as as_of, 0.1 as p_expansion, 99.5 as offer_mrr_usd, "
            "null as suppression_reason"
        )
        write_scores(
            con, _scores(date(2026, 2, 28), ["recent contraction", None]), date(2026, 2, 28)
        )
        rows = con.execute(
            "select as_of, offer_mrr, reporting_currency, suppression_reason "
            "from scores.account_score_history order by as_of, account_id"
        ).fetchall()
        types = table_columns(con, "scores.account_score_history")
    assert rows[0] == (date(2025, 12, 31), 99.5, "USD", None)
    assert rows[1][1:] == (120.0, "JPY", "recent contraction")
    assert "offer_mrr_usd" not in types and types["suppression_reason"] == "VARCHAR"
