from __future__ import annotations

import json
import pickle
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from flows.errors import GateFailed
from flows.quality.datadocs import update_data_docs
from flows.quality.gx import _context, validate_frame
from flows.quality.results import GateResult, enforce, gate_markdown, outcome_rows, write_results
from flows.quality.suites import load_suite, suite_columns, suite_query

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
    from great_expectations.expectations.registry import get_expectation_impl

    suite = load_suite(path)
    assert suite["meta"]["edge"] in {"raw", "marts", "drift", "scores"}
    assert "." in suite["meta"]["table"]
    assert suite["name"] == path.stem
    assert suite["expectations"]
    for exp in suite["expectations"]:
        assert exp["meta"]["severity"] in {"critical", "warning"}  # explicit, never implied
        get_expectation_impl(exp["type"])  # a typo in a type name fails here, not at run time


def test_unknown_edge_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"name": "s", "meta": {"edge": "bronze"}, "expectations": []}))
    with pytest.raises(ValueError, match=r"meta\.edge='bronze'"):
        load_suite(path)


def test_row_count_against_previous_run_is_a_parameter_expression(tmp_path: Path) -> None:
    suite = _suite(
        tmp_path,
        [
            {
                "type": "expect_table_row_count_to_be_between",
                "kwargs": {"min_value": {"$PARAMETER": "previous_row_count * 0.5"}},
            }
        ],
    )
    frame = pd.DataFrame({"id": range(6)})
    assert validate_frame(frame, suite, parameters={"previous_row_count": 12}).passed
    assert validate_frame(frame, suite, parameters={"previous_row_count": 0}).passed  # first run
    halved = validate_frame(frame, suite, parameters={"previous_row_count": 14})
    assert not halved.passed and halved.critical[0].kwargs["min_value"] == 7


def test_row_ids_name_the_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {
                "name": "s",
                "meta": {"table": "raw.t", "row_id": ["_source_file"]},
                "expectations": [
                    {
                        "type": "expect_column_values_to_be_in_set",
                        "kwargs": {"column": "segment", "value_set": ["smb"]},
                        "meta": {"severity": "critical"},
                    },
                    {
                        "type": "expect_table_row_count_to_be_between",
                        "kwargs": {"min_value": 1},
                        "meta": {"severity": "critical"},
                    },
                ],
            }
        )
    )
    frame = pd.DataFrame({"segment": ["smb", "whale"], "_source_file": ["a.csv", "b.csv"]})
    result = validate_frame(frame, path)
    (bad,) = result.critical
    assert bad.example_rows == [{"segment": "whale", "_source_file": "b.csv"}]
    assert "b.csv" in bad.describe() and "whale" in bad.describe()


def test_suite_query_reads_only_what_the_suite_needs() -> None:
    spec = {
        "meta": {
            "table": "marts.t",
            "where": "snapshot_date = $as_of",
            "row_id": ["account_id"],
            "computed_columns": {"diff": "a - b"},
        },
        "expectations": [
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount"}},
            {"type": "expect_column_values_to_be_null", "kwargs": {"column": "diff"}},
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "psi", "row_condition": "kind == 'x'"},
            },
            {"type": "expect_column_to_exist", "kwargs": {"column": "gone"}},
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {
                    "column": "psi",
                    "row_condition": {
                        "type": "comparison",
                        "column": {"name": "segment"},
                        "operator": "IN",
                        "parameter": ["smb"],
                    },
                },
            },
        ],
    }
    available = {
        "account_id": "VARCHAR",
        "amount": "DECIMAL(18,2)",
        "psi": "DOUBLE",
        "kind": "VARCHAR",
        "a": "DOUBLE",
        "b": "DOUBLE",
        "segment": "VARCHAR",
        "unused": "VARCHAR",
    }
    sql, params = suite_query(spec, available, extra_where="_run_id = $run_id")
    assert sql == (
        'select cast("amount" as double) as "amount", "psi", "kind", "segment", "account_id", '
        '(a - b) as "diff" from marts.t where (snapshot_date = $as_of) and (_run_id = $run_id)'
    )
    assert params == ["as_of", "run_id"]
    assert suite_columns(spec) == ["amount", "diff", "psi", "gone", "segment", "account_id"]


def test_an_expectation_on_the_tables_columns_sees_every_column(tmp_path: Path) -> None:
    """A suite reads only the columns its expectations name, except when one is about the
    table's shape: then the frame holds every column, in the table's order."""
    expected = ["account_id", "mrr", "segment"]
    spec = {
        "name": "t",
        "meta": {"table": "marts.t"},
        "expectations": [
            {
                "type": "expect_table_columns_to_match_ordered_list",
                "kwargs": {"column_list": expected},
                "meta": {"severity": "critical"},
            },
            {
                "type": "expect_table_column_count_to_equal",
                "kwargs": {"value": 3},
                "meta": {"severity": "critical"},
            },
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "mrr"},
                "meta": {"severity": "critical"},
            },
        ],
    }
    path = tmp_path / "t.json"
    path.write_text(json.dumps(spec))
    rows = {"account_id": ["a", "b"], "mrr": [1.0, 2.0], "segment": ["smb", "smb"]}
    same = _duck_frame(spec, {}, {"marts.t": pd.DataFrame(rows)})
    assert list(same.columns) == expected
    assert validate_frame(same, path).passed
    widened = pd.DataFrame({**rows, "extra": [1, 2]})
    frame = _duck_frame(spec, {}, {"marts.t": widened})
    assert list(frame.columns) == [*expected, "extra"]
    result = validate_frame(frame, path)
    assert [r.expectation for r in result.critical] == [
        "expect_table_columns_to_match_ordered_list",
        "expect_table_column_count_to_equal",
    ]


def _duck_frame(spec: dict, params: dict, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    con = duckdb.connect()
    try:
        for name, frame in tables.items():
            schema = name.split(".")[0]
            con.execute(f"create schema if not exists {schema}")
            con.register("_f", frame)
            con.execute(f"create table {name} as select * from _f")
            con.unregister("_f")
        cols = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema || '.' || table_name = ?",
                [spec["meta"]["table"]],
            ).fetchall()
        )
        query, names = suite_query(spec, cols)
        return con.execute(query, {n: params[n] for n in names}).df()
    finally:
        con.close()


def test_shipped_mrr_suite_catches_a_movement_that_does_not_reconcile(tmp_path: Path) -> None:
    path = EXPECTATIONS / "marts_mrr_movements.json"
    spec = load_suite(path)
    zero = dict.fromkeys(
        [
            "new_mrr",
            "upsell_mrr",
            "cross_sell_mrr",
            "expansion_mrr",
            "contraction_mrr",
            "churn_mrr",
            "reactivation_mrr",
            "price_change_mrr",
        ],
        0.0,
    )
    movements = pd.DataFrame(
        [
            {"account_id": "a", "month_start": date(2026, 1, 1), "opening_mrr": 0.0,
             **zero, "new_mrr": 100.0, "closing_mrr": 100.0},
            {"account_id": "a", "month_start": date(2026, 2, 1), "opening_mrr": 100.0,
             **zero, "upsell_mrr": 50.0, "expansion_mrr": 50.0, "closing_mrr": 150.0},
            {"account_id": "b", "month_start": date(2026, 2, 1), "opening_mrr": 100.0,
             **zero, "churn_mrr": 60.0, "closing_mrr": 0.0},
        ]
    )  # fmt: skip
    params = {"as_of": pd.Timestamp("2026-02-28"), "previous_row_count": 2}
    frame = _duck_frame(spec, params, {"marts.mrr_movements": movements})
    result = validate_frame(frame, path, parameters=params)
    (bad,) = result.critical
    assert bad.column == "mrr_reconciliation_diff" and bad.unexpected_count == 1
    assert bad.example_rows[0]["account_id"] == "b"
    assert bad.example_rows[0]["mrr_reconciliation_diff"] == pytest.approx(40.0)


def test_shipped_scores_suite_resolves_reason_codes_against_the_model() -> None:
    path = EXPECTATIONS / "scores_account_scores.json"
    spec = load_suite(path)
    scores = pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(12)],
            "as_of": [date(2026, 10, 31)] * 12,
            "p_expansion": [i / 20 for i in range(12)],
            "p_upsell": [0.1] * 12,
            "p_cross_sell": [0.1] * 12,
            "decile": [1 + i % 10 for i in range(12)],
            "expected_expansion_mrr": [1.0] * 12,
            "model_version": ["v1"] * 12,
            "touch_tier": ["low_touch"] * 12,
            "reason_codes": ["mrr,seat_utilization_30d", None, "tenure_days,renamed_feature"]
            + [None] * 9,
        }
    )
    params = {
        "as_of": pd.Timestamp("2026-10-31"),
        "active_accounts": 12,
        "model_versions": ["v1"],
        "model_features": ["mrr", "seat_utilization_30d", "tenure_days"],
    }
    frame = _duck_frame(spec, params, {"scores.account_scores": scores})
    result = validate_frame(frame, path, parameters=params)
    (bad,) = result.critical
    assert bad.column == "unresolved_reason_codes" and bad.examples == ["renamed_feature"]
    assert bad.example_rows == [{"unresolved_reason_codes": "renamed_feature", "account_id": "a2"}]
    assert not validate_frame(frame, path, parameters={**params, "active_accounts": 13}).passed
    assert not validate_frame(frame, path, parameters={**params, "model_versions": ["v2"]}).passed


def _psi_frame(
    values: dict[str, float], chance: float = 0.05, kinds: dict[str, str] | None = None
) -> pd.DataFrame:
    psi = pd.Series(values, dtype=float)
    kinds = kinds or {}
    return pd.DataFrame(
        {
            "feature": list(values),
            "psi": psi.to_numpy(),
            "chance_psi": chance,
            "psi_beyond_chance": psi.where(psi > chance, 0.0),
            "drift_kind": [kinds.get(f, "level") for f in values],
            "moved_bins": "(1, 2]: 10 of 100 (10.0%) -> 40 of 100 (40.0%)",
            "example_accounts": "a1, a2",
        }
    )


def test_shipped_drift_suite_warns_then_fails() -> None:
    """Thresholds apply to the PSI beyond what chance gives at these counts."""
    path = EXPECTATIONS / "drift_account_snapshots.json"
    calm = validate_frame(_psi_frame({"mrr": 0.02, "segment": 0.0}), path)
    assert calm.status == "passed"
    moderate = validate_frame(_psi_frame({"mrr": 0.15, "segment": 0.0}), path)
    assert moderate.status == "passed with warnings"
    shifted = validate_frame(_psi_frame({"mrr": 0.3, "segment": 0.0}), path)
    (bad,) = shifted.critical
    (row,) = bad.example_rows
    assert row["feature"] == "mrr" and row["psi"] == 0.3 and row["chance_psi"] == 0.05
    assert "40 of 100" in row["moved_bins"] and row["example_accounts"] == "a1, a2"
    # the same PSI on few rows, where chance alone reaches 0.4: neither warned nor failed
    assert validate_frame(_psi_frame({"mrr": 0.3}, chance=0.4), path).status == "passed"
    # no feature is let off by name: every one fails beyond chance and 0.25
    assert not validate_frame(_psi_frame({"tenure_days": 0.4, "mrr": 0.0}), path).passed
    assert not validate_frame(_psi_frame({"mrr": float("nan")}), path).passed
    # a value of a rule re-derived at each date (dbt meta.drift: rederived) steps with the rule:
    # it warns above 0.5 and fails above 1.0
    stepped = {"companions": 0.4, "mrr": 0.0}
    assert validate_frame(_psi_frame(stepped, kinds={"companions": "rederived"}), path).passed
    assert validate_frame(
        _psi_frame({"companions": 0.7}, kinds={"companions": "rederived"}), path
    ).warnings
    assert not validate_frame(
        _psi_frame({"companions": 1.2}, kinds={"companions": "rederived"}), path
    ).passed


def test_gate_failed_survives_pickling(tmp_path: Path) -> None:
    suite = _suite(
        tmp_path,
        [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}],
    )
    result = validate_frame(pd.DataFrame({"id": [None, "b"]}), suite)
    error = pickle.loads(pickle.dumps(GateFailed(result, [result])))
    assert isinstance(error, GateFailed) and error.results[0].suite == "t"
    assert "column id" in str(error)


def test_results_json_and_offline_data_docs(tmp_path: Path) -> None:
    suite = _suite(
        tmp_path,
        [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "p", "min_value": 0, "max_value": 1},
                "meta": {"severity": "critical"},
            },
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "id"},
                "meta": {"severity": "warning"},
            },
        ],
    )
    frame = pd.DataFrame({"id": ["a", None, "<b>"], "p": [0.2, 1.7, 0.4]})
    quality = tmp_path / "quality"
    pages: dict[str, Path] = {}
    for run_id in ("run-1", "run-2"):
        result = validate_frame(frame, suite)
        (path,) = write_results([result], quality / run_id, run_id)
        payload = json.loads(path.read_text())
        assert payload["meta"]["expansion"]["status"] == "failed"
        assert payload["results"][0]["expectation_config"]["meta"]["severity"] == "critical"
        index, pages = update_data_docs(quality, [path])
    assert index == quality / "data_docs" / "index.html"
    html = index.read_text()
    page = pages["t"].read_text()
    for text in (html, page):
        assert "http://" not in text and "https://" not in text and "<script" not in text
        assert "<link" not in text  # CSS is inline: the page works offline
    assert "run-1" in html and "run-2" in html
    assert "expect_column_values_to_be_between" in page and "1.7" in page
    # each expectation as GX's renderer says it, its type and arguments folded beneath
    assert (
        "<code>p</code> values must be greater than or equal to <code>0</code> and less than "
        "or equal to <code>1</code>." in page
    )
    assert "<code>id</code> values must never be null." in page
    assert "&lt;b&gt;" not in page or "<b>" not in page  # values are escaped
    assert pages["t"] == quality / "data_docs" / "runs" / "run-2" / "t.html"
    (quality / "data_docs" / "manifest.json").unlink()  # rebuilt from the results on disk
    index, _ = update_data_docs(quality, [])
    assert "run-1" in index.read_text()


def test_expectation_sentences_say_conditions_parameters_and_sets() -> None:
    from flows.quality.datadocs import expectation_sentence

    said = expectation_sentence(
        "expect_column_values_to_be_between",
        {"column": "psi", "max_value": 0.1, "row_condition": 'kind!="age"', "mostly": 0.95},
    )
    assert said is not None and said.startswith("Where <code>kind!=&quot;age&quot;</code>: ")
    assert "at least <code>95</code> % of the time" in said
    rows = expectation_sentence("expect_table_row_count_to_equal", {"value": {"$PARAMETER": "n"}})
    assert rows == "Must have exactly <code>n</code> (this run's value) rows."
    in_set = expectation_sentence(
        "expect_column_values_to_be_in_set", {"column": "t", "value_set": ["a<"]}
    )
    assert in_set is not None and "<code>a&lt;</code>" in in_set
    assert expectation_sentence("expect_something_of_our_own", {"column": "x"}) is None


def test_gx_speed_ups_keep_decimal_detection() -> None:
    from great_expectations import util

    _context()
    assert util.does_ndarray_contain_decimal_dtype(np.array([Decimal("1.5"), 2.0], dtype=object))
    assert not util.does_ndarray_contain_decimal_dtype(np.array([1.5, 2.0]))


def test_markdown_and_table_artifacts(tmp_path: Path) -> None:
    suite = _suite(
        tmp_path,
        [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "p", "max_value": 1}}],
    )
    result = validate_frame(pd.DataFrame({"p": [0.5, 3.0]}), suite)
    text = gate_markdown("scores", [result])
    assert "scores gate: FAILED" in text and "| t | scores.t | 2 |" in text and "3.0" in text
    rows = outcome_rows([result])
    assert rows == [
        {
            "suite": "t",
            "table": "scores.t",
            "expectation": "expect_column_values_to_be_between",
            "column": "p",
            "severity": "critical",
            "success": False,
            "rows": 2,
            "unexpected": 1,
            "examples": "[3.0]",
        }
    ]
    assert "skipped" in gate_markdown("drift", [], "skipped: no champion")


def test_row_count_history_compares_with_the_last_passing_run_as_of_then(tmp_path: Path) -> None:
    from flows.quality import gates
    from flows.settings import Settings

    settings = Settings(home=tmp_path)
    suite = _suite(tmp_path, [{"type": "expect_table_row_count_to_be_between", "kwargs": {}}])

    def gate(rows: int, passed: bool) -> GateResult:
        result = validate_frame(pd.DataFrame({"id": range(rows)}), suite)
        result.outcomes[0].success = passed
        return result

    assert gates._previous_row_counts(settings, "r0", date(2026, 1, 31)) == {}
    gates._record_history(settings, "r1", [gate(100, True)], date(2026, 1, 31))
    gates._record_history(settings, "r2", [gate(30, False)], date(2026, 2, 28))  # stopped
    gates._record_history(settings, "r3", [gate(120, True)], date(2026, 3, 31))
    assert gates._previous_row_counts(settings, "r4", date(2026, 2, 28)) == {"t": 100}
    assert gates._previous_row_counts(settings, "r4", date(2026, 3, 31)) == {"t": 120}
    assert gates._previous_row_counts(settings, "r3", date(2026, 3, 31)) == {"t": 100}
    assert gates._previous_row_counts(settings, "r4", date(2025, 12, 31)) == {}  # a backfill
    gates._record_history(settings, "r5", [gate(10, True)], date(2025, 12, 31))
    assert gates._previous_row_counts(settings, "r6", date(2026, 3, 31)) == {"t": 120}


def test_shipped_usage_suite_profiles_groups_in_duckdb_and_names_file_metric_day() -> None:
    """The usage gate reads one row per (file, metric, day), not the usage rows: a bad metric
    and a negative value are reported with the file, metric, day and how many rows they hold."""
    path = EXPECTATIONS / "raw_usage__usage_daily.json"
    spec = load_suite(path)
    days = pd.to_datetime(["2026-10-01", "2026-10-01", "2026-10-02", "2026-10-02", "2026-10-02"])
    usage = pd.DataFrame(
        {
            "_source_file": ["u1.parquet"] * 2 + ["u2.parquet"] * 3,
            "_run_id": ["r"] * 5,
            "account_id": ["a", "b", "a", "b", "c"],
            "usage_date": days,
            "metric": ["api_calls", "api_calls", "seats_typo", "seats_typo", "storage_gb"],
            "value": [Decimal("3"), Decimal("-1"), Decimal("1"), Decimal("2"), Decimal("5")],
        }
    )
    frame = _duck_frame(spec, {}, {"raw.usage__usage_daily": usage})
    assert list(frame.columns) == [
        "_source_file",
        "metric",
        "usage_date",
        "value_min",
        "value_max",
        "_rows",
    ]
    assert len(frame) == 3 and frame["_rows"].sum() == 5
    result = validate_frame(frame, path, parameters={"now": pd.Timestamp("2026-11-01")})
    assert result.rows == 5
    # metric names are the loader's (the declared ones); the suite checks values per group
    assert result.critical == []
    (negative,) = result.warnings
    assert negative.column == "value_min"
    assert negative.example_rows == [
        {
            "value_min": -1.0,
            "_source_file": "u1.parquet",
            "metric": "api_calls",
            "usage_date": "2026-10-01T00:00:00",
            "_rows": 2,
        }
    ]
    assert "1 of 3 groups of (_source_file, metric, usage_date) unexpected" in negative.describe()


def test_group_by_suite_rejects_a_column_that_is_neither_grouped_nor_aggregated(
    tmp_path: Path,
) -> None:
    path = tmp_path / "g.json"
    path.write_text(
        json.dumps(
            {
                "name": "g",
                "meta": {"table": "raw.t", "group_by": ["day"]},
                "expectations": [
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "value"}}
                ],
            }
        )
    )
    with pytest.raises(ValueError, match=r"\['value'\] are neither grouped nor computed_columns"):
        load_suite(path)


def test_a_null_share_is_judged_beyond_chance_at_this_many_rows(tmp_path: Path) -> None:
    """`mostly: 0.9`: 3 nulls in 20 rows is chance (the share's standard error is 0.07); 60 in
    300 is not, and the failure says what was configured and what chance allowed."""
    suite = _suite(
        tmp_path,
        [
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "industry", "mostly": 0.9},
            }
        ],
    )

    def frame(rows: int, nulls: int) -> pd.DataFrame:
        return pd.DataFrame({"industry": [None] * nulls + ["retail"] * (rows - nulls)})

    assert validate_frame(frame(20, 3), suite).passed
    assert validate_frame(frame(100_000, 10_100), suite).passed  # 89.9%: within chance
    (bad,) = validate_frame(frame(100_000, 10_500), suite).critical  # 89.5%: beyond
    (bad,) = validate_frame(frame(300, 60), suite).critical
    assert "0.9 less what chance gives at 300 rows" in bad.describe()
    assert "60 of 300" in bad.describe()
    exact = json.loads(suite.read_text())
    exact["expectations"][0]["meta"] = {"chance": False}
    suite.write_text(json.dumps(exact))
    assert not validate_frame(frame(20, 3), suite).passed  # meta.chance false: exact


def test_a_rate_bound_on_a_label_is_judged_beyond_chance(tmp_path: Path) -> None:
    suite = _suite(
        tmp_path,
        [
            {
                "type": "expect_column_mean_to_be_between",
                "kwargs": {"column": "label", "min_value": 0.02, "max_value": 0.25},
            }
        ],
    )

    def labels(rows: int, positives: int) -> pd.DataFrame:
        return pd.DataFrame({"label": [True] * positives + [False] * (rows - positives)})

    assert validate_frame(labels(50, 0), suite).passed  # 0 of 50 at a 2% rate: 36% chance
    assert not validate_frame(labels(5_000, 0), suite).passed
    assert not validate_frame(labels(5_000, 2_000), suite).passed
    # a mean of a column that is not a 0/1 rate keeps its bounds
    amounts = pd.DataFrame({"label": [0.3] * 40})
    assert not validate_frame(amounts, suite).passed


def test_a_row_count_falls_beyond_half_and_beyond_chance(tmp_path: Path) -> None:
    """The shipped marts suites: fewer than half the previous run's rows fails only when chance
    (counts as Poisson) cannot give it: 3 after 8 passes, 140 after 300 fails."""
    path = EXPECTATIONS / "marts_accounts.json"
    spec = load_suite(path)
    (count,) = [
        e
        for e in spec["expectations"]
        if isinstance(e["kwargs"].get("min_value"), dict)
        and "previous_row_count" in e["kwargs"]["min_value"]["$PARAMETER"]
    ]
    suite = _suite(tmp_path, [count])

    def rows(n: int) -> pd.DataFrame:
        return pd.DataFrame({"account_id": [f"a{i}" for i in range(n)]})

    assert validate_frame(rows(3), suite, parameters={"previous_row_count": 8}).passed
    assert validate_frame(rows(150), suite, parameters={"previous_row_count": 300}).passed
    failed = validate_frame(rows(140), suite, parameters={"previous_row_count": 300})
    assert not failed.passed and failed.parameters["chance_row_count"] > 150
    assert validate_frame(rows(1), suite, parameters={"previous_row_count": 0}).passed


def test_raw_failures_name_the_key_file_and_row(tmp_path: Path) -> None:
    """A raw suite names the file; the gate adds the table's key (extract contract) and the
    row in the file, the lineage columns the raw table has."""
    from flows.quality.gates import _lineage_ids

    con = duckdb.connect()
    con.execute("create schema raw")
    con.execute(
        "create table raw.crm__accounts (account_id varchar, employee_count integer, "
        "_source_file varchar, _row bigint, _run_id varchar)"
    )
    spec = load_suite(EXPECTATIONS / "raw_crm__accounts.json")
    ids = _lineage_ids(con, spec)
    assert ids == ["account_id", "_row"]  # _source_file: the suite's own row id
    frame = pd.DataFrame(
        {
            "account_id": ["001", "002"],
            "employee_count": [12, -5],
            "_source_file": ["crm/accounts/accounts_2026-11.csv"] * 2,
            "_row": [2, 3],
        }
    )
    result = validate_frame(
        frame,
        EXPECTATIONS / "raw_crm__accounts.json",
        parameters={"now": pd.Timestamp("2026-12-01"), "run_id": "r1"},
        row_id=ids,
    )
    (bad,) = [o for o in result.warnings if o.column == "employee_count"]
    assert bad.example_rows == [
        {
            "employee_count": -5,
            "_source_file": "crm/accounts/accounts_2026-11.csv",
            "account_id": "002",
            "_row": 3,
        }
    ]
    con.execute("alter table raw.crm__accounts drop column _row")
    assert _lineage_ids(con, spec) == ["account_id"]  # a raw table without row numbers


def test_many_unexpected_rows_name_the_first_twenty_in_row_order(tmp_path: Path) -> None:
    """GX looks row ids up for the first `partial_unexpected_count` unexpected rows only
    (flows/quality/gx.py `_first_unexpected_rows`), and they are the same rows, in row order,
    whether a `mostly` lets the rows pass or not."""
    path = tmp_path / "s.json"
    expectations = [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "v", **kw}}
        for kw in ({"mostly": 0.4}, {})
    ]
    path.write_text(
        json.dumps(
            {
                "name": "s",
                "meta": {"table": "raw.t", "row_id": ["id"]},
                "expectations": expectations,
            }
        )
    )
    n = 5000
    frame = pd.DataFrame(
        {"id": [f"a{i}" for i in range(n)], "v": [None if i % 2 else 1.0 for i in range(n)]}
    )
    lenient, strict = validate_frame(frame, path).outcomes
    assert lenient.success and not strict.success
    for outcome in (lenient, strict):
        assert outcome.unexpected_count == n // 2
        assert outcome.example_rows == [{"id": f"a{i}", "v": None} for i in range(1, 40, 2)]
