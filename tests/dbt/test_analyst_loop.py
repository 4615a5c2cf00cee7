"""The analyst's loop: a feature added as dbt_project/README.md says ("Adding a feature"),
built with a plain `dbt build` in the project folder (no flag, no environment variable), is in
the model the pipeline's train stage fits next, though the pipeline's own manifest was written
before the edit. And dbt's lineage goes on past the marts: the model, the score tables, the
serving tables and every sync (scripts/render_exposures.py) are in the manifest.

The loop runs on a copy of the repository's dbt side laid out as a clone has it: dbt_project/ (its
profiles.yml a symlink to ../profiles/profiles.yml), profiles/, config/ and
state/warehouse.duckdb (the default warehouse of both the profile and the pipeline) with the
year of demo extracts loaded into raw.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from flows.delivery.publish import PUBLISHED
from flows.delivery.sync_config import load_syncs
from flows.errors import ModelQualityError
from flows.modelling.train import train_model
from flows.registry import list_models, load_model
from flows.settings import Settings
from flows.transform.manifest import current_manifest, declared_features, manifest_path
from models.params import load_params
from tests.dbt.conftest import AS_OF, DBT_PROJECT, PROFILES, ROOT
from tests.dbt.test_add_feature import FEATURE, add_feature

# what could point dbt or the profile elsewhere than the conventions under test
DBT_ENV = (
    "DBT_PROFILES_DIR",
    "DBT_PROJECT_DIR",
    "DBT_TARGET_PATH",
    "EXPANSION_TARGET",
    "EXPANSION_WAREHOUSE_PATH",
)


def copy_clone(root: Path) -> Path:
    """dbt_project/ (its profiles.yml the committed link), profiles/ and config/ under `root`,
    as a clone lays them out; no state."""
    shutil.copytree(
        DBT_PROJECT,
        root / "dbt_project",
        symlinks=True,  # profiles.yml stays the committed link
        ignore=shutil.ignore_patterns("target", "logs"),
    )
    shutil.copytree(PROFILES, root / "profiles")
    shutil.copytree(ROOT / "config", root / "config")
    return root


@pytest.fixture
def clone(tmp_path: Path, year_raw_warehouse: Path) -> Path:
    root = copy_clone(tmp_path / "clone")
    (root / "state").mkdir()
    shutil.copy(year_raw_warehouse, root / "state" / "warehouse.duckdb")
    return root


def plain_dbt(command: Sequence[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """`dbt <command>` as an analyst types it in the current folder."""
    from dbt.cli.main import dbtRunner

    for name in DBT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EXPANSION_DUCKDB_MEMORY_LIMIT", "1GB")  # the CI machine, not the loop
    return dbtRunner().invoke(list(command))


def test_a_feature_an_analyst_builds_is_trained_by_the_pipeline(
    clone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(project_dir=clone, home=clone / "state")
    # the pipeline's manifest from before the edit (as its last run left it)
    assert FEATURE not in declared_features(current_manifest(settings))
    written = manifest_path(settings).stat().st_mtime_ns

    project = clone / "dbt_project"
    assert (project / "profiles.yml").is_symlink()
    add_feature(project)
    monkeypatch.chdir(project)
    result = plain_dbt(
        ["build", "--select", "+account_features", "--indirect-selection", "cautious"],
        monkeypatch,
    )
    assert result.success, result.exception
    assert (project / "target" / "manifest.json").is_file()  # the analyst's, not the pipeline's
    assert manifest_path(settings).stat().st_mtime_ns == written
    monkeypatch.chdir(ROOT)

    # `expansion train`: the stage parses the changed project again before reading features
    # (150 accounts may miss the quality bars: the model is registered all the same)
    with contextlib.suppress(ModelQualityError):
        train_model(settings, AS_OF, force=True)
    versions = list(list_models(settings.registry)["version"])
    assert len(versions) == 1
    model = load_model(settings.registry, versions[0])
    assert FEATURE in model.features
    for booster in model.boosters.values():
        assert FEATURE in booster.feature_name()
    assert model.params.reasons[FEATURE].group == "pricing"
    assert FEATURE not in load_params().features.all  # params.yaml was not edited
    assert manifest_path(settings).stat().st_mtime_ns > written

    # and the declared default warehouse is the pipeline's: the built column is there
    from flows.warehouse import Warehouse

    built = Warehouse.from_settings(settings).read_frame(
        f"select {FEATURE} from marts.account_features"
    )
    assert built[FEATURE].notna().mean() > 0.5

    # the lineage past the marts, in the manifest the pipeline parsed
    manifest = json.loads(manifest_path(settings).read_text(encoding="utf-8"))
    exposures = manifest["exposures"]
    ml = exposures["exposure.expansion.expansion_model"]
    assert "model.expansion.account_features" in ml["depends_on"]["nodes"]
    sources = {k for k in manifest["sources"] if k.startswith("source.expansion.scores.")}
    published = {f"source.expansion.{r}" for r in PUBLISHED.values() if r.startswith("scores.")}
    assert published <= sources
    serving = exposures["exposure.expansion.serving_file"]["depends_on"]["nodes"]
    assert len(serving) == len(PUBLISHED) and published <= set(serving)
    for spec in load_syncs(clone / "config" / "syncs.yml"):
        exposure = exposures[f"exposure.expansion.{spec.name}"]
        relation = PUBLISHED[spec.source]
        schema, table = relation.split(".")
        node = f"model.expansion.{table}" if schema == "marts" else f"source.expansion.{relation}"
        assert exposure["depends_on"]["nodes"] == [node], spec.name


def _renderer() -> Any:
    path = ROOT / "scripts" / "render_exposures.py"
    spec = importlib.util.spec_from_file_location("render_exposures", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_sync_and_serving_table_is_an_exposure() -> None:
    """The committed exposures are what the serving tables and config/syncs.yml give; a syncs
    file of an example configuration renders too (its syncs read serving tables)."""
    renderer = _renderer()
    committed = renderer.OUT.read_text(encoding="utf-8")
    assert committed == renderer.render(), (
        f"{renderer.OUT.relative_to(ROOT)} is out of date with config/syncs.yml or "
        f"flows/delivery/publish.py: regenerate it with `{renderer.COMMAND}`"
    )
    for syncs in sorted((ROOT / "config" / "examples").glob("**/syncs.yml")):
        text = renderer.render(syncs)
        for spec in load_syncs(syncs):
            assert f"- name: {spec.name}\n" in text


def test_score_sources_declare_the_score_columns() -> None:
    import yaml

    from flows.schemas import SCORE_COLUMNS

    doc = yaml.safe_load(
        (DBT_PROJECT / "models" / "pipeline" / "_pipeline__sources.yml").read_text()
    )
    (scores,) = doc["sources"]
    tables = {t["name"]: t for t in scores["tables"]}
    assert {r.split(".")[1] for r in PUBLISHED.values() if r.startswith("scores.")} <= set(tables)
    for name in ("account_scores", "account_score_history"):
        assert [c["name"] for c in tables[name]["columns"]] == list(SCORE_COLUMNS), name


def test_the_pipeline_parses_again_only_when_the_project_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No parse after the pipeline's own build; one after an edit, and after a failed build
    (which may have rewritten the manifest from files that changed since)."""
    from types import SimpleNamespace

    from flows.errors import DbtBuildFailed
    from flows.transform import dbt, manifest
    from flows.transform.parse import Parsed

    root = tmp_path / "project"
    shutil.copytree(DBT_PROJECT, root / "dbt_project", ignore=shutil.ignore_patterns("target"))
    shutil.copytree(PROFILES, root / "profiles")
    settings = Settings(project_dir=root, home=root / "state")
    outcome = {"success": True}

    def build(_settings: Settings, _args: list[str], _manifest: Any = None) -> Any:
        manifest_path(settings).parent.mkdir(parents=True, exist_ok=True)
        manifest_path(settings).write_text("{}")
        return SimpleNamespace(success=outcome["success"], result=SimpleNamespace(results=[]))

    parses: list[Path] = []
    monkeypatch.setattr(dbt, "_invoke_dbt", build)
    monkeypatch.setattr(dbt, "parsed_project", lambda s: Parsed(None, 0.0))  # builds everything
    monkeypatch.setattr(manifest, "run_dbt_parse", lambda s: parses.append(s.dbt_project))

    dbt.run_dbt_build(settings, AS_OF)
    assert current_manifest(settings) == manifest_path(settings) and parses == []
    add_feature(root / "dbt_project")
    current_manifest(settings)
    assert len(parses) == 1

    dbt.run_dbt_build(settings, AS_OF)
    current_manifest(settings)
    assert len(parses) == 1
    outcome["success"] = False
    with pytest.raises(DbtBuildFailed):
        dbt.run_dbt_build(settings, AS_OF)
    current_manifest(settings)
    assert len(parses) == 2
