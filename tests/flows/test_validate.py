from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flows.validate import GateFailed, enforce, load_suite, validate_frame

EXPECTATIONS = Path(__file__).parents[2] / "expectations"


def _suite(tmp_path: Path, expectations: list[dict]) -> Path:
    path = tmp_path / "t.json"
    path.write_text(
        json.dumps({"name": "t", "meta": {"table": "scores.t"}, "expectations": expectations})
    )
    return path


def test_critical_failure_names_table_column_expectation_and_values(tmp_path: Path) -> None:
    suite = _suite(
        tmp_path,
        [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "p", "min_value": 0, "max_value": 1},
            },
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "id"},
                "meta": {"severity": "warning"},
            },
        ],
    )
    frame = pd.DataFrame({"id": ["a", None, "c"], "p": [0.2, 1.7, 0.4]})
    result = validate_frame(frame, suite)
    assert not result.passed
    assert [o.column for o in result.critical] == ["p"]
    assert [o.column for o in result.warnings] == ["id"]
    with pytest.raises(GateFailed) as info:
        enforce(result)
    message = str(info.value)
    assert "scores.t" in message and "column p" in message
    assert "expect_column_values_to_be_between" in message and "1.7" in message


def test_warning_only_passes(tmp_path: Path) -> None:
    suite = _suite(
        tmp_path,
        [
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "id"},
                "meta": {"severity": "warning"},
            }
        ],
    )
    result = enforce(validate_frame(pd.DataFrame({"id": [None, "b"]}), suite))
    assert result.passed and len(result.warnings) == 1


def test_parameters_fill_placeholders(tmp_path: Path) -> None:
    suite = _suite(
        tmp_path,
        [
            {
                "type": "expect_column_max_to_be_between",
                "kwargs": {"column": "d", "max_value": {"$PARAMETER": "as_of"}},
            }
        ],
    )
    frame = pd.DataFrame({"d": pd.to_datetime(["2026-10-01", "2026-10-31"])})
    assert validate_frame(frame, suite, parameters={"as_of": pd.Timestamp("2026-10-31")}).passed
    assert not validate_frame(frame, suite, parameters={"as_of": pd.Timestamp("2026-10-30")}).passed


def test_unknown_severity_is_rejected(tmp_path: Path) -> None:
    suite = _suite(
        tmp_path,
        [
            {
                "type": "expect_column_to_exist",
                "kwargs": {"column": "x"},
                "meta": {"severity": "fatal"},
            }
        ],
    )
    with pytest.raises(ValueError, match=r"meta\.severity='fatal'"):
        load_suite(suite)


@pytest.mark.parametrize("path", sorted(EXPECTATIONS.glob("*.json")), ids=lambda p: p.stem)
def test_shipped_suites_are_valid(path: Path) -> None:
    suite = load_suite(path)
    assert suite["meta"]["edge"] in {"raw", "marts", "scores"}
    assert "." in suite["meta"]["table"]
    assert suite["expectations"]
