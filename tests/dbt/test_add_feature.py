"""An analyst adds a feature with one SQL edit and one YAML entry; the model picks it up.

The edits of the "Adding a feature" section of dbt_project/README.md (`add_feature`: no Python
and no models/params.yaml change); tests/dbt/test_analyst_loop.py makes them on a copy of the
project, builds it with a plain `dbt build` and trains on it. Here: what a declaration must say.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.transform.manifest import declared_features

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


def add_feature(project: Path) -> None:
    """The two edits of the README's example, on the dbt project at `project`."""
    sql = project / "models" / "marts" / "account_snapshots.sql"
    text = sql.read_text(encoding="utf-8")
    assert text.count(SQL_ANCHOR) == 1
    sql.write_text(text.replace(SQL_ANCHOR, SQL_ANCHOR + SQL_EDIT), encoding="utf-8")
    yml = project / "models" / "marts" / "_marts__models.yml"
    text = yml.read_text(encoding="utf-8")
    # account_snapshots is the last model of the file: an entry appended to it is its column
    assert text.rindex("\n  - name: ") == text.index("\n  - name: account_snapshots\n")
    yml.write_text(text.rstrip("\n") + "\n" + YAML_ENTRY, encoding="utf-8")


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
