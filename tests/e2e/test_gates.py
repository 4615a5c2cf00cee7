"""Each data-quality gate stops the run when it fails, before anything is published or synced.

One module-scoped project and one first successful run (which trains the champion); then one
run per gate, each made to fail: a contract-valid extract with a value the raw suite rejects,
and for the other gates a copy of expectations/ with one suite tightened (through
EXPANSION_EXPECTATIONS_DIR). Every failing run must name the table, column and expectation, and
leave the serving file, the sync ledger and the CRM files as they were (files byte for byte).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

pytestmark = pytest.mark.e2e

EXPECTATIONS = Path(__file__).parents[2] / "expectations"
Edit = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def first_run(project: Path) -> dict[str, Any]:
    from flows.pipeline import expansion_pipeline

    summary = expansion_pipeline()
    assert summary["status"] == "completed"
    return summary


@pytest.fixture
def tighten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, Edit], Path]:
    """Point the pipeline at a copy of expectations/ with a suite edited; returns the copy."""

    def apply(suite: str, edit: Edit) -> Path:
        target = tmp_path / "expectations"
        shutil.copytree(EXPECTATIONS, target, dirs_exist_ok=True)
        path = target / f"{suite}.json"
        spec = json.loads(path.read_text())
        edit(spec)
        path.write_text(json.dumps(spec, indent=2))
        monkeypatch.setenv("EXPANSION_EXPECTATIONS_DIR", str(target))
        return target

    return apply


def _expectation(spec: dict[str, Any], type_: str, column: str, **match: Any) -> dict[str, Any]:
    for exp in spec["expectations"]:
        kwargs = exp["kwargs"]
        same = exp["type"] == type_ and kwargs.get("column") == column
        if same and all(kwargs.get(k) == v for k, v in match.items()):
            return exp  # type: ignore[no-any-return]
    raise AssertionError(f"no {type_} on {column} with {match} in {spec['name']}")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _published_state(project: Path) -> tuple[dict[str, str], dict[str, list[tuple[Any, ...]]]]:
    """Checksums of the serving file and of every file of the sync destination (CRM files, and
    `sync/ledger.duckdb` where the ledger is a file), plus the sync ledger kept in the
    warehouse's `sync` schema."""
    state = project / "state"
    serving = state / "serving" / "expansion.duckdb"
    assert serving.is_file()
    files = [serving, *sorted(p for p in (state / "sync").rglob("*") if p.is_file())]
    assert any(p.suffix == ".csv" for p in files)  # the first run sent the CRM file
    con = duckdb.connect(str(state / "warehouse.duckdb"), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'sync'"
            ).fetchall()
        ]
        ledger = {t: con.execute(f"select * from sync.{t} order by all").fetchall() for t in tables}
    finally:
        con.close()
    return {str(p.relative_to(state)): _sha(p) for p in files}, ledger


def _last_record(project: Path) -> dict[str, Any]:
    runs = sorted((project / "state" / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime)
    record: dict[str, Any] = json.loads(runs[-1].read_text())
    return record


def _fails_at_gate(project: Path, suite: str) -> tuple[str, dict[str, Any]]:
    """Run the pipeline, expect a GateFailed, check nothing published changed."""
    from flows.errors import GateFailed
    from flows.pipeline import expansion_pipeline

    before = _published_state(project)
    with pytest.raises(GateFailed) as info:
        expansion_pipeline()
    assert _published_state(project) == before
    record = _last_record(project)
    assert record["status"] == "failed" and "GateFailed" in record["error"]
    (failed,) = [g for g in record["gates"] if not g["passed"]]
    assert failed["suite"] == suite
    assert Path(failed["results_path"]).is_file() and Path(failed["page"]).is_file()
    assert "failed" in Path(failed["page"]).read_text()
    assert str(info.value.result.page) in str(info.value)  # the message points at Data Docs
    return str(info.value), record


def test_first_run_writes_results_data_docs_and_row_counts(
    project: Path, first_run: dict[str, Any]
) -> None:
    quality = project / "state" / "quality"
    gates = first_run["gates"]
    assert {g["edge"] for g in gates} == {"raw", "marts", "scores"}  # no champion yet: no drift
    assert all(g["passed"] for g in gates)
    run_dir = quality / first_run["run_id"]
    assert {p.stem for p in run_dir.glob("*.json")} == {g["suite"] for g in gates}
    result = json.loads((run_dir / "scores_account_scores.json").read_text())
    assert result["meta"]["expansion"]["rows"] == first_run["accounts_scored"]
    index = quality / "data_docs" / "index.html"
    assert all(g["data_docs"] == str(index) for g in gates)
    html = index.read_text()
    assert first_run["run_id"] in html and "scores_account_scores" in html
    for page in [index, *(Path(g["page"]) for g in gates)]:
        text = page.read_text()
        assert "http://" not in text and "https://" not in text  # works offline
    con = duckdb.connect(str(project / "state" / "warehouse.duckdb"), read_only=True)
    history = con.execute(
        "select suite, row_count from quality.gate_history where run_id = ?",
        [first_run["run_id"]],
    ).df()
    con.close()
    counts = dict(zip(history["suite"], history["row_count"], strict=True))
    assert counts["scores_account_scores"] == first_run["accounts_scored"]
    assert counts["marts_accounts"] == 240
    artifacts = {(a.key, a.type) for a in _gate_artifacts(first_run["run_id"])}
    for edge in ("raw", "marts", "drift", "scores"):  # drift: a "skipped" note
        assert (f"gate-{edge}", "markdown") in artifacts
    assert {("gate-raw-expectations", "table"), ("gate-scores-expectations", "table")} <= artifacts


def _gate_artifacts(flow_run_id: str) -> list[Any]:
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        FlowRunFilter,
        TaskRunFilter,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        return client.read_artifacts(  # every argument given: the server rejects nulls
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(like_="gate-"),
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)]),
            ),
            flow_run_filter=FlowRunFilter(),
            task_run_filter=TaskRunFilter(),
            sort=ArtifactSort.CREATED_DESC,
            limit=100,
            offset=0,
        )


def test_data_docs_render_in_headless_chromium(
    project: Path, first_run: dict[str, Any], tmp_path: Path
) -> None:
    from tests.browser import screenshot

    index = project / "state" / "quality" / "data_docs" / "index.html"
    scores = Path(first_run["gates"][-1]["page"])
    for name, page in [("index", index), ("scores", scores)]:
        png = screenshot(page, tmp_path / f"{name}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert "values must" in scores.read_text(encoding="utf-8")  # GX's sentences, not JSON


def test_raw_gate_failure_stops_the_run(project: Path, first_run: dict[str, Any]) -> None:
    tickets = project / "landing" / "crm" / "support_tickets"
    lines = next(tickets.glob("*.csv")).read_text().splitlines()
    header, sample = lines[0], lines[1].split(",")
    sample[0] = '"5005zz0000000001"'
    sample[2] = '"blocker"'  # the contract takes any text; the raw suite's accepted values do not
    bad = tickets / "support_tickets_zz-bad.csv"
    bad.write_text(header + "\n" + ",".join(sample) + "\n")
    try:
        message, record = _fails_at_gate(project, "raw_crm__support_tickets")
        assert "raw.crm__support_tickets" in message and "column priority" in message
        assert "expect_column_values_to_be_in_set" in message and "blocker" in message
        assert "support_tickets_zz-bad.csv" in message  # the row id names the file
        assert "dbt_build" not in record["stages"]
        con = duckdb.connect(str(project / "state" / "warehouse.duckdb"), read_only=True)
        kept = con.execute(
            "select count(*) from raw.crm__support_tickets where priority = 'blocker'"
        ).fetchone()
        con.close()
        assert kept == (0,)  # taken back out of raw, to be checked again next run
    finally:
        bad.unlink()


def test_marts_gate_failure_stops_the_run(
    project: Path, first_run: dict[str, Any], tighten: Callable[[str, Edit], Path]
) -> None:
    def edit(spec: dict[str, Any]) -> None:
        exp = _expectation(spec, "expect_column_values_to_be_between", "current_mrr")
        exp["kwargs"]["max_value"] = 1.0

    tighten("marts_accounts", edit)
    message, record = _fails_at_gate(project, "marts_accounts")
    assert "marts.accounts" in message and "column current_mrr" in message
    assert "expect_column_values_to_be_between" in message and "'max_value': 1.0" in message
    assert "validate_marts" in record["stages"] and "train" not in record["stages"]


def test_drift_gate_failure_stops_the_run_and_marts_warnings_do_not(
    project: Path, first_run: dict[str, Any], tighten: Callable[[str, Edit], Path]
) -> None:
    def edit(spec: dict[str, Any]) -> None:
        for exp in spec["expectations"]:
            if exp["meta"]["severity"] == "critical" and "max_value" in exp["kwargs"]:
                # every shift is now too much, even one chance explains (psi_beyond_chance is
                # 0 for those)
                exp["kwargs"] |= {"column": "psi", "max_value": 0.0}

    copy = tighten("drift_account_snapshots", edit)
    # and a marts suite with a warning that fails: reported, the run goes on to the drift gate
    path = copy / "marts_contracts.json"
    spec = json.loads(path.read_text())
    _expectation(spec, "expect_column_values_to_be_between", "quantity")["kwargs"]["max_value"] = 0
    path.write_text(json.dumps(spec))

    message, record = _fails_at_gate(project, "drift_account_snapshots")
    assert "marts.account_features" in message and "(fail > 0 on psi)" in message
    assert ": PSI " in message and ", chance " in message and "against training date" in message
    assert "train" not in record["stages"] and "score" not in record["stages"]
    (contracts,) = [g for g in record["gates"] if g["suite"] == "marts_contracts"]
    assert contracts["passed"] and contracts["status"] == "passed with warnings"
    assert "column quantity of marts.contracts" in contracts["warnings"][0]


def test_scores_gate_failure_stops_the_run(
    project: Path, first_run: dict[str, Any], tighten: Callable[[str, Edit], Path]
) -> None:
    def edit(spec: dict[str, Any]) -> None:
        exp = _expectation(spec, "expect_column_values_to_be_between", "p_expansion")
        exp["kwargs"]["max_value"] = 0.01

    tighten("scores_account_scores", edit)
    message, record = _fails_at_gate(project, "scores_account_scores")
    assert "scores.account_scores" in message and "column p_expansion" in message
    assert "expect_column_values_to_be_between" in message and "'account_id': " in message
    assert "score" in record["stages"] and "publish" not in record["stages"]
    drift = [g for g in record["gates"] if g["edge"] == "drift"]
    assert drift and drift[0]["passed"]  # the champion exists now: drift was checked
    con = duckdb.connect(str(project / "state" / "warehouse.duckdb"), read_only=True)
    scored = con.execute("select distinct run_id from scores.account_scores").df()
    con.close()
    assert list(scored["run_id"]) == [record["run_id"]]  # scored, never published
    published = duckdb.connect(
        str(project / "state" / "serving" / "expansion.duckdb"), read_only=True
    )
    try:
        current = published.execute("select distinct run_id from account_scores").df()
    finally:
        published.close()
    assert record["run_id"] not in set(pd.Series(current["run_id"]))
