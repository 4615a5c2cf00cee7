"""The console of `expansion run`, without running the pipeline: drift warnings as one line per
feature, an error printed once (its log lines in the run's log file only), one line per stage,
the gate table of what warned, and the top accounts with the column they are ranked by."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from rich.console import Console

from flows.quality.results import ExpectationOutcome

DRIFT_ROWS = [
    {
        "psi_beyond_chance": 0.3712345678901234,
        "feature": "tenure_days",
        "psi": 0.3712345678901234,
        "chance_psi": 0.2087654321098765,
        "drift_kind": "age",
        "reference_date": "2026-07-31",
    },
    {
        "psi_beyond_chance": 0.1945693155463911,
        "feature": "opportunities_won_365d",
        "psi": 0.1945693155463911,
        "chance_psi": 0.1188329525347743,
        "drift_kind": "level",
        "reference_date": "2026-07-31",
    },
]


def _drift(
    severity: str, max_value: float, rows: list[dict], unexpected: int
) -> ExpectationOutcome:
    return ExpectationOutcome(
        suite="drift_account_snapshots",
        table="marts.account_features",
        expectation="expect_column_values_to_be_between",
        column="psi_beyond_chance",
        severity=severity,
        success=False,
        element_count=56,
        unexpected_count=unexpected,
        kwargs={"column": "psi_beyond_chance", "max_value": max_value, "row_condition": {}},
        example_rows=rows,
    )


def test_a_drift_warning_is_one_line_per_feature_in_words() -> None:
    said = _drift("warning", 0.1, DRIFT_ROWS, 2).describe()
    assert said == (
        "tenure_days: PSI 0.37, chance 0.21 (warn > 0.1 beyond chance), against training "
        "date 2026-07-31\n    "
        "opportunities_won_365d: PSI 0.19, chance 0.12 (warn > 0.1 beyond chance), against "
        "training date 2026-07-31"
    )
    failed = _drift("critical", 0.25, DRIFT_ROWS[:1], 3).describe()
    assert failed.startswith("tenure_days: PSI 0.37, chance 0.21 (fail > 0.25 beyond chance)")
    assert failed.endswith("\n    and 2 more")
    # the bins that moved and accounts in them, when the gate found them
    rows = [{**DRIFT_ROWS[0], "moved_bins": "[0, 30) 12% -> 40%", "example_accounts": "a1, a2"}]
    said = _drift("critical", 0.25, rows, 1).describe()
    assert said.endswith("; moved [0, 30) 12% -> 40%; accounts a1, a2")


def test_other_expectations_are_described_as_before() -> None:
    outcome = ExpectationOutcome(
        suite="raw_billing__products",
        table="raw.billing__products",
        expectation="expect_column_values_to_be_in_set",
        column="product_family",
        severity="critical",
        success=False,
        element_count=6,
        unexpected_count=1,
        examples=["bundle"],
        kwargs={"column": "product_family", "value_set": ["core", "addon"]},
    )
    said = outcome.describe()
    assert said.startswith("expect_column_values_to_be_in_set on column product_family")
    assert "1 of 6 rows unexpected" in said and "bundle" in said


@pytest.fixture
def terminal() -> tuple[logging.Handler, io.StringIO]:
    """A console log handler on the root logger, as Prefect's logging.yml sets up."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler, stream
    root.removeHandler(handler)


def test_an_error_is_printed_once_and_its_detail_goes_to_the_log_file(
    terminal: tuple[logging.Handler, io.StringIO], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from flows.errors import ExtractError
    from flows.logs import run_log

    handler, stream = terminal
    said = io.StringIO()
    err = Console(file=said, width=200)
    message = "usage_daily_zz-bad.parquet row 1: column value -5.0 below the minimum 0"
    log = logging.getLogger("flows.probe")

    def failing_load() -> None:
        # what Prefect and the pipeline log about a failing task and flow
        log.error("Task run failed with exception: ExtractError(%r)", message)
        log.error("Finished in state Failed(%r)", message)
        raise ExtractError(message)

    path = tmp_path / "logs" / "run-1.log"
    cli = importlib.import_module("flows.cli.app")
    monkeypatch.setattr(cli, "err", err)
    with run_log(path), pytest.raises(typer.Exit) as stopped:
        cli.guarded(failing_load, log_file=path)
    assert stopped.value.exit_code == 3
    shown = said.getvalue() + stream.getvalue()
    assert shown.count(message) == 1, shown
    assert f"detail: {path}" in said.getvalue()
    assert path.read_text().count(message) == 2  # the log lines, in the file only
    assert handler.level == logging.NOTSET  # the console handler is as it was
    log.error("after the run")
    assert "after the run" in stream.getvalue()


def test_each_stage_is_one_line_with_what_it_did(tmp_path: Path) -> None:
    from flows.cli.console import stage_console
    from flows.run.stage_lines import stage_done

    out = io.StringIO()
    console = Console(file=out, width=120)
    load = SimpleNamespace(
        rows_by_table={"crm__accounts": 1000, "usage__usage_daily": 2000},
        loaded=["a.csv", "b.parquet"],
        quarantined_by_table={},
    )
    dbt = SimpleNamespace(models_run=52, tests_run=243, warned=0, selection="all")
    score = SimpleNamespace(accounts_scored=850, model_version="v0001", alerts=0)
    with stage_console(tmp_path, "run", console) as path:
        stage_done("load", 2.2, load)
        stage_done("dbt_build", 15.2, dbt)
        stage_done("check_drift", 0.0, [])
        stage_done("score", 2.5, score)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and "\x1b" not in out.getvalue()
    assert lines[0].split() == ["load", "2.2", "s", "3,000", "rows", "loaded", "from", "2", "files"]
    assert "52 models built, 243 tests run (all)" in lines[1]
    assert "skipped (no champion to compare with)" in lines[2]
    assert "850 accounts scored with v0001" in lines[3]
    assert path.parent == tmp_path / "logs"
    assert "flows.stages - score done in 2.5 s: 850 accounts scored" in path.read_text()


def test_the_gate_table_shows_only_what_warned_or_failed() -> None:
    from flows.cli.summary import print_gates

    clean = {"suite": "raw_crm__accounts", "rows": 10, "passed": True, "status": "passed"}
    warned = {
        "suite": "drift_account_snapshots",
        "rows": 58,
        "passed": True,
        "status": "passed with warnings",
        "critical": [],
        "warnings": [_drift("warning", 0.1, DRIFT_ROWS[:1], 1).describe()],
    }
    out = io.StringIO()
    print_gates(Console(file=out, width=160), [clean] * 19 + [warned])
    text = out.getvalue()
    assert "raw_crm__accounts" not in text
    assert "tenure_days: PSI 0.37, chance 0.21 (warn > 0.1 beyond chance)" in text
    assert "19 of 20 data-quality suites passed" in text


def test_the_top_accounts_show_the_column_they_are_ranked_by(tmp_path: Path) -> None:
    from flows.cli.summary import print_top_accounts

    settings = SimpleNamespace(registry=tmp_path / "models", serving_db=tmp_path / "none.duckdb")
    rows = [
        {
            "account_id": f"A{i}",
            "account_name": f"Account {i}",
            "p_expansion": p,
            "offer_mrr": mrr,
            "reporting_currency": "EUR",
            "next_best_offer": "upsell",
            "touch_tier": "high_touch",
            "reason_1": "1 open deal",
        }
        for i, (p, mrr) in enumerate([(0.45, 6315.0), (0.47, 4305.0)], 1)
    ]
    out = io.StringIO()
    summary = {"run_id": "r1", "top_accounts": rows, "model": {}}
    print_top_accounts(Console(file=out, width=200), settings, summary)  # type: ignore[arg-type]
    text = out.getvalue()
    assert "ranked by p(expansion) x offer MRR^" in text
    assert "priority" in text and "offer MRR EUR" in text and "high_touch" in text


def test_a_backfill_shows_its_shared_stages_and_one_line_per_date(tmp_path: Path) -> None:
    from datetime import date

    from flows.cli.console import stage_console
    from flows.run.stage_lines import date_done, stage_done

    out = io.StringIO()
    summary = SimpleNamespace(accounts_scored=850, model={"champion_version": "v0003"})
    score = SimpleNamespace(accounts_scored=850, model_version="v0003", alerts=0)
    with stage_console(tmp_path, "backfill", Console(file=out, width=120), dates=2):
        stage_done("load", 2.2, None, None, backfill=True)  # shared: before any date
        for day in (date(2026, 1, 31), date(2026, 2, 28)):
            stage_done("score", 1.0, score, day, backfill=True)
            date_done(day, 20.0, summary)
    lines = out.getvalue().splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["load", "2.2"],
        ["2026-01-31", "done"],
        ["2026-02-28", "done"],
    ]
    assert "850 accounts scored with v0003" in lines[1]


def _fake_pipeline(**_: object) -> dict:
    """What `expansion_pipeline` returns, after logging two stage lines and a Prefect-like
    line (the CLI's wiring, without a run)."""
    from flows.run.stage_lines import stage_done

    logging.getLogger("prefect.task_runs").warning("Finished in state Completed()")
    stage_done("load", 1.0, SimpleNamespace(rows_by_table={"t": 5}, loaded=["a.csv"]))
    stage_done("publish", 0.5, SimpleNamespace(history_only=False, rows={"account_scores": 5}))
    return {
        "run_id": "r-1",
        "as_of": "2026-10-31",
        "status": "completed",
        "stages": {"load": 1.0, "publish": 0.5, "total": 1.6},
        "model": {"champion_version": "v0001", "trained_version": None},
        "accounts_scored": 5,
        "gates": [],
        "synced": [],
        "top_accounts": [],
    }


@pytest.mark.parametrize("as_json", [False, True])
def test_the_run_command_prints_stage_lines_and_summary_or_only_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    import json

    from typer.testing import CliRunner

    import flows.pipeline
    from flows.cli import app

    for source in ("crm", "billing", "usage"):  # the pipeline is faked: any file will do
        (tmp_path / "landing" / source / "x").mkdir(parents=True)
        (tmp_path / "landing" / source / "x" / "x_20261031.csv").write_text("a\n1\n")
    monkeypatch.setattr(flows.pipeline, "expansion_pipeline", _fake_pipeline)
    env = {
        "EXPANSION_HOME": str(tmp_path / "state"),
        "EXPANSION_LANDING_DIR": str(tmp_path / "landing"),
    }
    done = CliRunner().invoke(app, ["run", *(["--json"] if as_json else [])], env=env)
    assert done.exit_code == 0, done.output
    assert "Finished in state" not in done.output and "\x1b" not in done.output
    logs = list((tmp_path / "state" / "logs").glob("run-*.log"))
    assert len(logs) == 1 and "Finished in state Completed()" in logs[0].read_text()
    if as_json:
        shown = json.loads(done.stdout)
        assert shown["status"] == "completed" and shown["log_file"] == str(logs[0])
        return
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["load", "1.0", "s"] and lines[1].startswith("publish")
    assert "run r-1 as of 2026-10-31: completed" in done.stdout
    assert f"log: {logs[0]}" in done.stdout
