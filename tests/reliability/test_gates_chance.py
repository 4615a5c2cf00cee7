"""Gates that mean it: the drift gate on a small business's real features.

Built once per module from the demo generator (300 accounts x 14 months: extracts, load, the
dbt models up to marts.account_features, no dbt tests, no training: ~15 s of CPU), with a
champion whose training window is every label-complete snapshot date, as `train_model` would
save it. A rerun on unchanged data must pass without a warning (before issue #18 it failed:
PSI of the pooled training window, judged without its sampling error); a real change, one
feature moved for half of the accounts, must still fail, naming the feature, the bins that
moved with their counts and accounts in them, and leave published data as it was.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from flows.errors import GateFailed
from flows.ingest.load import load_landing
from flows.quality import drift
from flows.registry import MODELS_DIR, champion_version, model_dir, promote
from flows.settings import Settings
from flows.transform.dbt import _invoke_dbt, dbt_args, dbt_env
from flows.transform.manifest import FEATURES_TABLE, SNAPSHOT_MODEL, model_params
from flows.warehouse import Warehouse
from models.psi import reference, stability_against

AS_OF = date(2026, 10, 31)  # the generator's last day
VERSION = "v0001-20261101T000000Z"
# where dbt computes the snapshot features; FEATURES_TABLE, a view, reads them from here
SNAPSHOTS = f"marts.{SNAPSHOT_MODEL}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    from demo.generator import generate

    root = tmp_path_factory.mktemp("chance")
    generate(root / "landing", root / "oracle", accounts=300, months=14, seed=7, end_date=AS_OF)
    settings = Settings(home=root / "state", landing_dir=root / "landing")
    settings.home.mkdir(parents=True)
    load_landing(settings.landing_dir, Warehouse.from_settings(settings), "fixture")
    models_only = ["build", "--select", f"+{FEATURES_TABLE.split('.')[1]}"]
    models_only += ["--exclude", "resource_type:test", "resource_type:unit_test"]
    with dbt_env(settings):
        assert _invoke_dbt(settings, dbt_args(models_only, settings, AS_OF)).success
    _champion(settings)
    yield settings


def _champion(settings: Settings) -> None:
    """A champion's registry entry as train_model leaves it, minus the boosters: its features
    and training window (every label-complete snapshot date), its drift reference kept."""
    params = model_params(settings)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        have = {r[0] for r in con.execute(f"describe {FEATURES_TABLE}").fetchall()}
        start, end = con.execute(
            f"select min(snapshot_date), max(snapshot_date) from {FEATURES_TABLE} "
            "where is_label_complete"
        ).fetchone()
    numeric = [f for f in params.features.numeric if f in have]
    categorical = [f for f in params.features.categorical if f in have]
    folder = settings.registry / MODELS_DIR / VERSION
    folder.mkdir(parents=True)
    meta = {
        "features": [*numeric, *categorical],
        "categorical_features": categorical,
        "training_window": {"start": start.isoformat(), "end": end.isoformat()},
    }
    (folder / "metadata.json").write_text(json.dumps(meta))
    promote(settings.registry, VERSION)
    snapshots = Warehouse.from_settings(settings).read_frame(f"select * from {FEATURES_TABLE}")
    drift.keep_drift_references(settings, VERSION, snapshots)


@pytest.fixture
def settings(built: Settings, tmp_path: Path) -> Settings:
    """A copy of the built state a test may change."""
    home = tmp_path / "state"
    shutil.copytree(built.home, home, ignore=shutil.ignore_patterns("quality"))
    return built.model_copy(update={"home": home})


def _features(settings: Settings) -> tuple[list[str], list[str]]:
    meta = json.loads((model_dir(settings.registry, VERSION) / "metadata.json").read_text())
    return drift._model_features(meta)


def _serving_state(settings: Settings) -> list[Path]:
    return sorted(settings.serving.rglob("*")) if settings.serving.exists() else []


def test_an_unchanged_rerun_of_a_small_business_passes_without_a_warning(
    settings: Settings,
) -> None:
    results = drift.check_drift(settings, AS_OF, run_id="rerun")
    (result,) = results
    assert result.status == "passed", [o.describe() for o in result.warnings]
    numeric, categorical = _features(settings)
    assert len(result.preview) == len(numeric) + len(categorical) > 30
    # both figures per feature, in the run's validation results (which the Data Docs show)
    kept = json.loads(Path(result.results_path or "").read_text())
    rows = kept["meta"]["expansion"]["preview"]
    assert all(r["chance_psi"] > 0 and r["reference_date"] for r in rows)
    assert max(r["psi_beyond_chance"] for r in rows) <= 0.1
    # as declared in dbt (meta.drift) or measured: levels, ages, values of re-derived rules
    assert {r["drift_kind"] for r in rows} == {"level", "age", "rederived"}
    # the tenure of accounts three months older is compared like with like
    (tenure,) = [r for r in rows if r["feature"] == "tenure_days"]
    assert tenure["shift_days"] > 0

    # what the gate did before: the pooled training window, no chance level. It failed here.
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        cols = ", ".join(f'"{c}"' for c in [*numeric, *categorical])
        train = con.execute(
            f"select {cols} from {FEATURES_TABLE} where is_active and is_label_complete"
        ).df()
        score = con.execute(
            f"select {cols} from {FEATURES_TABLE} where is_active and snapshot_date = ?", [AS_OF]
        ).df()
    pooled = stability_against(reference(train, numeric, categorical), score, numeric, categorical)
    assert pooled["psi"].max() > 0.25


@pytest.mark.parametrize(
    ("feature", "change"),
    [
        ("mrr", "mrr * 100"),  # amounts in cents in half of the rows
        ("tenure_days", "tenure_days + 1000"),  # an age, moved by far more than the calendar
        ("segment", "'whale'"),  # a category never seen in training
    ],
)
def test_a_feature_moved_for_half_of_the_accounts_fails_naming_bins_and_accounts(
    settings: Settings, feature: str, change: str
) -> None:
    with duckdb.connect(str(settings.warehouse)) as con:
        moved = {
            r[0]
            for r in con.execute(
                f"update {SNAPSHOTS} set {feature} = {change} "
                "where snapshot_date = ? and is_active and hash(account_id) % 2 = 0 "
                "returning account_id",
                [AS_OF],
            ).fetchall()
        }
    published = _serving_state(settings)
    with pytest.raises(GateFailed) as failed:
        drift.check_drift(settings, AS_OF, run_id="shifted")
    message = str(failed.value)
    assert "drift_account_snapshots" in message and FEATURES_TABLE in message
    (bad,) = [o for o in failed.value.result.critical]
    (row,) = [r for r in bad.example_rows if r["feature"] == feature]
    assert row["psi"] > max(0.25, row["chance_psi"])
    assert " of " in row["moved_bins"] and "->" in row["moved_bins"]  # bins, counts, shares
    named = row["example_accounts"].split(", ")
    # accounts in the bins that grew: most of them moved there (the others were there anyway)
    assert len(named) == 5 and len(set(named) & moved) >= 3
    assert all(name in message for name in named)
    assert _serving_state(settings) == published  # a gate never publishes


def test_a_model_saved_with_an_old_reference_still_loads_and_is_checked(
    settings: Settings,
) -> None:
    """A reference kept by an older version pools the whole window and has no date: rebuilt
    from the warehouse's training rows when they are there; used as it is when they are not
    (a champion trained elsewhere), calendar features then shown but not judged."""
    numeric, categorical = _features(settings)
    path = model_dir(settings.registry, VERSION) / "drift_reference_10bins.json"
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        cols = ", ".join(f'"{c}"' for c in [*numeric, *categorical])
        train = con.execute(
            f"select {cols} from {FEATURES_TABLE} where is_active and is_label_complete"
        ).df()
    path.write_text(json.dumps(reference(train, numeric, categorical)))
    (result,) = drift.check_drift(settings, AS_OF)
    assert result.status == "passed"
    assert json.loads(path.read_text())["format"] == drift.REFERENCE_FORMAT  # rebuilt

    path.write_text(json.dumps(reference(train, numeric, categorical)))
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute(f"delete from {SNAPSHOTS} where snapshot_date <> ?", [AS_OF])
    frame = _frame_of(drift.check_drift, settings)
    assert "format" not in json.loads(path.read_text())  # kept as it was
    ages = frame.loc[frame["shift_days"] > 0]
    assert ages.empty  # no date to move by ...
    # ... and declared or measured ages are not judged against a pooled window
    assert (frame.loc[frame["feature"] == "tenure_days", "psi_beyond_chance"] == 0).all()
    assert champion_version(settings.registry) == VERSION


def _frame_of(check: Any, settings: Settings) -> pd.DataFrame:
    """The drift frame of a check, passed or failed."""
    try:
        results = check(settings, AS_OF)
    except GateFailed as failed:
        results = failed.results
    return pd.DataFrame(results[0].preview)
