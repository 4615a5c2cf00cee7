"""`dbt docs generate` works offline, and every published mart column is described.

`--static` writes one self-contained `static_index.html` (manifest and catalog inlined) that a
browser opens from disk. The docs app's only remote resource is dbt's usage-tracking script,
which loads only when the manifest says `send_anonymous_usage_stats: true`; the project's
`flags:` turn that off.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def docs(dbt, built_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("dbt-docs")
    warehouse = dbt.copy(built_warehouse, work)
    dbt.run(["docs", "generate", "--static"], work, warehouse=warehouse)
    return work / "target"


def test_static_docs_need_no_network(docs: Path) -> None:
    page = (docs / "static_index.html").read_text()
    remote = re.findall(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=[\"'](?:https?:)?//", page)
    assert remote == [], f"static_index.html loads remote resources: {remote}"
    manifest = json.loads((docs / "manifest.json").read_text())
    assert manifest["metadata"]["send_anonymous_usage_stats"] is False


def test_every_mart_column_is_described(dbt, docs: Path) -> None:
    manifest = json.loads((docs / "manifest.json").read_text())
    catalog = json.loads((docs / "catalog.json").read_text())
    for mart in dbt.marts:
        node = manifest["nodes"][f"model.expansion.{mart}"]
        assert node["description"].strip(), f"{mart} has no description"
        built = set(catalog["nodes"][f"model.expansion.{mart}"]["columns"])
        documented = {
            name for name, column in node["columns"].items() if column["description"].strip()
        }
        assert built - documented == set(), f"{mart}: columns without a description"
        assert set(node["columns"]) - built == set(), f"{mart}: documented columns not built"
