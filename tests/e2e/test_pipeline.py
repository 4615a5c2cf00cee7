"""The whole DAG, end to end, on small generated data in a temporary directory.

One module-scoped project: a first run (trains and promotes a champion, publishes, syncs), a
second run with no new extracts (reuses the champion, sends nothing), and a run fed a bad
extract (stops at the raw gate; published scores and the CRM file destination stay as they were).
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

pytestmark = pytest.mark.e2e


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _serving(root: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(root / "state" / "serving" / "expansion.duckdb"), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


@pytest.fixture(scope="module")
def first_run(project: Path) -> dict:
    from flows.pipeline import expansion_pipeline

    return expansion_pipeline()


def test_first_run_scores_every_active_account(project: Path, first_run: dict) -> None:
    assert first_run["status"] == "completed"
    as_of = date.fromisoformat(first_run["as_of"])
    con = duckdb.connect(str(project / "state" / "warehouse.duckdb"), read_only=True)
    active = set(
        con.execute(
            "select account_id from marts.account_snapshots where snapshot_date = ? and is_active",
            [as_of],
        ).df()["account_id"]
    )
    con.close()
    scores = _serving(project, "select * from account_scores")
    assert set(scores["account_id"]) == active and len(active) > 100
    assert scores["p_expansion"].between(0, 1).all()
    assert scores["p_expansion"].std() > 0.01
    assert scores["model_version"].eq(first_run["model"]["champion_version"]).all()
    assert scores["reason_1"].notna().mean() > 0.5  # the top accounts carry reasons
    assert set(scores["touch_tier"]) <= {"high_touch", "low_touch", "tech_touch"}
    # health beside the score: every active account has a score, its stage, and offers priced
    # from the catalogue are worth something
    health = ["health_score", "health_adoption", "health_engagement", "health_support"]
    assert scores[health].notna().all().all() and scores[health].stack().between(0, 100).all()
    assert set(scores["loyalty_stage"]) <= {"new", "repeater", "promoter", "fan"}
    assert scores["loyalty_stage"].nunique() > 1 and scores["health_score"].std() > 1
    offered = scores["offer_type"].notna()
    assert offered.mean() > 0.5 and (scores.loc[offered, "offer_mrr"] > 0).all()
    assert (scores.loc[~offered, "expected_expansion_mrr"].fillna(0) == 0).all()
    history = _serving(project, "select count(*) as n from account_score_history")
    assert history["n"].iloc[0] == len(scores)
    assert first_run["model"]["trained_version"] == first_run["model"]["champion_version"]
    assert first_run["top_accounts"]
    assert first_run["freshness"] and {f["status"] for f in first_run["freshness"]} == {"pass"}


def test_first_run_syncs_every_score_to_the_crm_file(project: Path, first_run: dict) -> None:
    sync, tasks = first_run["synced"]
    assert tasks["name"] == "crm_expansion_tasks" and tasks["inserted"] == 0  # no alerts yet
    scored = first_run["accounts_scored"]
    assert sync["inserted"] == scored and sync["updated"] == 0
    exported = pd.read_csv(sync["files"][0])
    assert len(exported) == scored
    assert {"AccountId", "Expansion_Propensity__c", "Next_Best_Offer__c"} <= set(exported.columns)


READER = """
import json, sys, time, pathlib
import duckdb
serving, stop, mode = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
# hold: one connection open all the time (sees the version it opened: its file stays whole);
# reconnect: a new connection per read (sees each new version as it is swapped in).
held = duckdb.connect(serving, read_only=True) if mode == "hold" else None
seen, errors, reads = set(), [], 0
while not stop.exists():
    try:
        c = held or duckdb.connect(serving, read_only=True)
        run_id, rows = c.execute(
            "select p.run_id, (select count(*) from account_scores) from _publication p"
        ).fetchone()
        hist = c.execute(
            "select count(*) from account_score_history where run_id = ?", [run_id]
        ).fetchone()[0]
        if hist != rows:
            errors.append(f"half-written version {run_id}: {rows} scores, {hist} in history")
        seen.add(run_id)
        reads += 1
        if held is None:
            c.close()
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    time.sleep(0.05)
print(json.dumps({"reads": reads, "errors": errors, "versions": sorted(seen)}))
"""


def test_readers_never_block_runs_and_see_whole_versions(
    project: Path, first_run: dict, tmp_path: Path
) -> None:
    """BI tools reading the serving file (one holding it open) while the pipeline runs twice."""
    import json
    import subprocess
    import sys

    from flows.pipeline import expansion_pipeline

    serving = project / "state" / "serving" / "expansion.duckdb"
    stop = tmp_path / "stop"
    readers = {
        mode: subprocess.Popen(
            [sys.executable, "-c", READER, str(serving), str(stop), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("hold", "reconnect")
    }
    try:
        second = expansion_pipeline()
        third = expansion_pipeline()
    finally:
        stop.touch()
        results = {}
        for mode, reader in readers.items():
            out, err = reader.communicate(timeout=60)
            assert reader.returncode == 0, err
            results[mode] = json.loads(out)
    assert second["status"] == third["status"] == "completed"
    for mode, result in results.items():
        assert result["errors"] == [] and result["reads"] > 10, (mode, result)
    assert results["hold"]["versions"] == [first_run["run_id"]]
    assert {second["run_id"], third["run_id"]} <= set(results["reconnect"]["versions"])


def test_second_run_reuses_champion_and_sends_nothing(project: Path, first_run: dict) -> None:
    from flows.pipeline import expansion_pipeline

    second = expansion_pipeline()
    assert second["status"] == "completed"
    assert second["files_loaded"] == 0
    assert second["model"]["trained_version"] is None
    assert second["model"]["champion_version"] == first_run["model"]["champion_version"]
    assert second["synced"][0]["inserted"] + second["synced"][0]["updated"] == 0
    # one row per account per as_of: re-scoring the same date replaced the first run's rows
    history = _serving(project, "select distinct as_of, run_id from account_score_history")
    rows = [(str(r["as_of"])[:10], r["run_id"]) for r in history.to_dict("records")]
    assert rows == [(second["as_of"], second["run_id"])]


def _published_state(project: Path) -> tuple[str, list[tuple], list[Path]]:
    """The serving file, the sync ledger and the CRM files: what a failed run must not touch."""
    state = project / "state"
    con = duckdb.connect(str(state / "warehouse.duckdb"), read_only=True)
    try:
        ledger = con.execute("select * from sync.record_state order by all").fetchall()
    finally:
        con.close()
    return (
        _sha(state / "serving" / "expansion.duckdb"),
        ledger,
        sorted((state / "sync").rglob("*.csv")),
    )


def test_bad_extract_fails_the_load_and_changes_nothing(project: Path, first_run: dict) -> None:
    from flows.errors import ExtractError
    from flows.pipeline import expansion_pipeline

    before = _published_state(project)
    bad = project / "landing" / "usage" / "usage_daily" / "usage_daily_zz-bad.parquet"
    pd.DataFrame(
        {
            "account_id": ["x1"],
            "usage_date": [date(2026, 1, 1)],
            "metric": ["api_calls"],
            "value": [-5.0],
        }
    ).to_parquet(bad)
    try:
        with pytest.raises(ExtractError) as info:
            expansion_pipeline()
        message = str(info.value)
        assert "usage_daily_zz-bad.parquet" in message and "row 1" in message
        assert "column value" in message and "below the minimum 0" in message
        assert "column account_id" in message and "no matching crm.accounts.account_id" in message
        assert _published_state(project) == before
    finally:
        bad.unlink()


def test_raw_gate_failure_stops_the_run_and_changes_nothing(project: Path, first_run: dict) -> None:
    from flows.errors import GateFailed
    from flows.pipeline import expansion_pipeline

    before = _published_state(project)
    products = project / "landing" / "billing" / "products"
    bad = products / "products_zz-bad.csv"
    # Meets the contract (product_family is text there), fails the raw suite's accepted values.
    bad.write_text("product_id,product_name,product_family\nprod_zz,Whale Pack,bundle\n")
    try:
        with pytest.raises(GateFailed) as info:
            expansion_pipeline()
        message = str(info.value)
        assert "raw.billing__products" in message and "column product_family" in message
        assert "expect_column_values_to_be_in_set" in message and "bundle" in message
        assert _published_state(project) == before
        con = duckdb.connect(str(project / "state" / "warehouse.duckdb"), read_only=True)
        kept = con.execute(
            "select count(*) from raw.billing__products where product_family = 'bundle'"
        ).fetchone()[0]
        con.close()
        assert kept == 0  # taken back out of raw, to be checked again next run
    finally:
        bad.unlink()


def test_backfill_scores_past_months_with_what_was_known_then(
    project: Path, first_run: dict
) -> None:
    from datetime import timedelta

    from flows.backfill import expansion_backfill
    from flows.pipeline import expansion_pipeline
    from flows.registry import read_metadata

    current_before = _serving(project, "select * from account_scores order by account_id")
    runs = expansion_backfill(date(2026, 5, 1), date(2026, 7, 31), "month")["dates"]
    dates = [date.fromisoformat(r["as_of"]) for r in runs]
    assert dates == [date(2026, 5, 31), date(2026, 6, 30), date(2026, 7, 31)]
    for run, day in zip(runs, dates, strict=True):
        meta = read_metadata(project / "state" / "models", run["model"]["champion_version"])
        # the model saw only labels complete by that date: features and labels known then
        assert date.fromisoformat(meta["training_window"]["end"]) + timedelta(days=90) <= day
        assert run["synced"] == []  # a backfill never writes to the CRM

    history = _serving(
        project,
        "select cast(as_of as varchar) as as_of, count(*) as n from account_score_history group by 1",
    ).set_index("as_of")["n"]
    con = duckdb.connect(str(project / "state" / "warehouse.duckdb"), read_only=True)
    for day in dates:
        active = con.execute(
            "select count(*) from marts.account_snapshots where snapshot_date = ? and is_active",
            [day],
        ).fetchone()[0]
        assert history[day.isoformat()] == active > 0
    con.close()
    # BI's current scores are untouched by a backfill
    current_after = _serving(project, "select * from account_scores order by account_id")
    pd.testing.assert_frame_equal(current_before, current_after)

    # Re-running a date replaces that date's scores and nothing else.
    expansion_pipeline(as_of=date(2026, 6, 30), backfill=True)
    again = _serving(
        project,
        "select cast(as_of as varchar) as as_of, count(*) as n from account_score_history group by 1",
    ).set_index("as_of")["n"]
    pd.testing.assert_series_equal(history.sort_index(), again.sort_index())
