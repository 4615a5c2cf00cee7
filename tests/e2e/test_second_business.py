"""The second demo business end to end, from configuration alone: flat-priced tiers with bundled
limits, mixed terms, add-on packs, its own usage metrics, reported in JPY and read in Japanese.

Nothing in flows/, models/ or dbt_project/ names one of its metrics (tests/demo checks that);
here one small run shows that the pipeline learns from them and speaks the business's language.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest

pytestmark = pytest.mark.e2e

PROJECT_DIR = Path(__file__).resolve().parents[2]
DECLARATION = PROJECT_DIR / "config" / "examples" / "flat_tiers" / "business.yml"
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def business_project(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: None
) -> Iterator[Path]:
    from demo.generator import generate

    root = tmp_path_factory.mktemp("flat_tiers")
    generate(
        root / "landing", root / "oracle", accounts=240, months=16, seed=7, business="flat_tiers"
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EXPANSION_HOME", str(root / "state"))
        env.setenv("EXPANSION_LANDING_DIR", str(root / "landing"))
        env.setenv("EXPANSION_BUSINESS_CONFIG", str(DECLARATION))
        env.setenv("EXPANSION_REPORTING_CURRENCY", "JPY")
        env.setenv("EXPANSION_LOCALE", "ja")
        env.setenv("EXPANSION_DUCKDB_MEMORY_LIMIT", "2GB")
        yield root


@pytest.fixture(scope="module")
def business_run(business_project: Path) -> dict:
    from flows.pipeline import expansion_pipeline

    return expansion_pipeline()


def _query(path: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def test_scores_every_active_account_with_its_own_usage_features(
    business_project: Path, business_run: dict
) -> None:
    from flows.registry import read_metadata
    from models.business import load_business

    assert business_run["status"] == "completed"
    warehouse = business_project / "state" / "warehouse.duckdb"
    active = _query(
        warehouse,
        "select account_id from marts.account_snapshots "
        f"where snapshot_date = '{business_run['as_of']}' and is_active",
    )
    scores = _query(warehouse, "select * from scores.account_scores")
    assert set(scores["account_id"]) == set(active["account_id"]) and len(scores) > 100
    # health beside the score: every active account has a score, its stage, and offers priced
    # from the catalogue are worth something
    health = ["health_score", "health_adoption", "health_engagement", "health_support"]
    assert scores[health].notna().all().all() and scores[health].stack().between(0, 100).all()
    assert set(scores["loyalty_stage"]) <= {"new", "repeater", "promoter", "fan"}
    assert scores["loyalty_stage"].nunique() > 1 and scores["health_score"].std() > 1
    offered = scores["offer_type"].notna()
    assert offered.mean() > 0.5 and (scores.loc[offered, "offer_mrr"] > 0).all()
    assert (scores.loc[~offered, "expected_expansion_mrr"].fillna(0) == 0).all()
    # the model learnt from the metrics the declaration names, through the generic families
    metrics = load_business(DECLARATION).metric_names
    version = business_run["model"]["champion_version"]
    features = read_metadata(business_project / "state" / "models", version)["features"]
    used = {f.split("__")[0] for f in features if "__" in f}
    assert used == set(metrics)
    assert any(f.endswith("__utilization") for f in features)
    assert {"core_term_months", "is_monthly_term", "months_to_renewal"} <= set(features)


def test_amounts_are_in_jpy_and_reasons_and_offers_in_japanese(
    business_project: Path, business_run: dict
) -> None:
    serving = business_project / "state" / "serving" / "expansion.duckdb"
    scores = _query(serving, "select * from account_scores")
    assert set(scores["reporting_currency"]) == {"JPY"}
    assert "expected_expansion_mrr" in scores.columns
    reasons = scores["reason_1"].dropna()
    assert len(reasons) > 0.5 * len(scores)
    assert reasons.map(lambda r: bool(JAPANESE.search(r))).all()
    offers = scores["next_best_offer"].dropna()
    assert len(offers) and offers.map(lambda r: bool(JAPANESE.search(r))).all()
    accounts = _query(serving, "select reporting_currency, current_mrr from accounts")
    assert set(accounts["reporting_currency"]) == {"JPY"}

    sync = business_run["synced"][0]
    exported = pd.read_csv(sync["files"][0])
    assert exported["Expansion_Reason_1__c"].dropna().map(lambda r: bool(JAPANESE.search(r))).all()
    assert set(exported["Expansion_Currency__c"]) == {"JPY"}

    report = business_run["model"].get("report") or next(
        (business_project / "state" / "reports").glob("model_*.html")
    )
    html = Path(report).read_text(encoding="utf-8")
    assert "円" in html and "$" not in re.sub(r"<script.*?</script>", "", html, flags=re.S)
    assert any(r in html for r in reasons.head(20))
