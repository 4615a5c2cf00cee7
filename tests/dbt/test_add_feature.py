"""An analyst adds a feature with one SQL edit and one YAML entry; the model picks it up.

This follows the "Adding a feature" section of dbt_project/README.md on a copy of the dbt
project: no Python and no models/params.yaml change.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.transform.manifest import declared_features
from models.params import load_params
from tests.dbt.conftest import DBT_PROJECT

FEATURE = "mrr_per_product"
SQL_ANCHOR = "        contracts.products_held,\n"
SQL_EDIT = (
    "        {{ safe_divide('contracts.mrr', 'contracts.products_held') }} as mrr_per_product,\n"
)
YAML_ENTRY = """
      - name: mrr_per_product
        data_type: double precision
        description: MRR per product held, in the reporting currency (reporting_currency).
        config:
          meta:
            feature: numeric
            reason: {group: pricing, text: "{money} per product"}
"""


@pytest.fixture(scope="module")
def analyst_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the dbt project with the two edits of the README's example."""
    project = tmp_path_factory.mktemp("analyst") / "dbt_project"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))
    sql = project / "models" / "marts" / "account_snapshots.sql"
    text = sql.read_text(encoding="utf-8")
    assert text.count(SQL_ANCHOR) == 1
    sql.write_text(text.replace(SQL_ANCHOR, SQL_ANCHOR + SQL_EDIT), encoding="utf-8")
    yml = project / "models" / "marts" / "_marts__models.yml"
    text = yml.read_text(encoding="utf-8")
    # account_snapshots is the last model of the file: an entry appended to it is its column
    assert text.rindex("\n  - name: ") == text.index("\n  - name: account_snapshots\n")
    yml.write_text(text.rstrip("\n") + "\n" + YAML_ENTRY, encoding="utf-8")
    return project


def test_a_feature_declared_in_dbt_is_trained_and_explained(
    dbt, year_raw_warehouse: Path, analyst_project: Path, tmp_path: Path
) -> None:
    from models.train import train_model

    warehouse = dbt.copy(year_raw_warehouse, tmp_path)
    dbt.run(
        ["build", "--select", "+account_features", "--indirect-selection", "cautious"],
        tmp_path,
        warehouse=warehouse,
        project=analyst_project,
    )
    declared = declared_features(tmp_path / "target" / "manifest.json")
    assert list(declared) == [FEATURE] and declared[FEATURE].kind == "numeric"

    params = load_params().with_declared_features(declared)
    assert FEATURE in params.features.numeric and params.reasons[FEATURE].group == "pricing"
    assert FEATURE not in load_params().features.all  # params.yaml was not edited

    snapshots = dbt.read(warehouse, "select * from marts.account_features")
    assert snapshots[FEATURE].notna().mean() > 0.5
    model = train_model(snapshots, params)
    assert FEATURE in model.features
    for booster in model.boosters.values():
        assert FEATURE in booster.feature_name()


def test_a_declared_feature_needs_a_reason(tmp_path: Path) -> None:
    import json

    manifest = tmp_path / "manifest.json"
    column = {"name": "x", "config": {"meta": {"feature": "numeric"}}}
    node = {
        "resource_type": "model",
        "name": "account_snapshots",
        "patch_path": "expansion://models/marts/_marts__models.yml",
        "columns": {"x": column},
    }
    manifest.write_text(json.dumps({"nodes": {"model.expansion.account_snapshots": node}}))
    with pytest.raises(ValueError, match=r"_marts__models.yml: column account_snapshots.x"):
        declared_features(manifest)
