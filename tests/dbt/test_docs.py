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


def test_every_mart_column_is_described(dbt, built_warehouse: Path, docs: Path) -> None:
    """account_features is account_snapshots (described there) plus one `<metric>__<stat>`
    column per declared metric and stat, which its model description explains."""
    manifest = json.loads((docs / "manifest.json").read_text())
    catalog = json.loads((docs / "catalog.json").read_text())
    metrics = set(
        dbt.read(built_warehouse, "select metric from raw.config__usage_metrics")["metric"]
    )
    assert metrics, "the demo declares usage metrics"

    def described(mart: str) -> set[str]:
        node = manifest["nodes"][f"model.expansion.{mart}"]
        assert node["description"].strip(), f"{mart} has no description"
        return {name for name, column in node["columns"].items() if column["description"].strip()}

    for mart in dbt.marts:
        node = manifest["nodes"][f"model.expansion.{mart}"]
        built = set(catalog["nodes"][f"model.expansion.{mart}"]["columns"])
        documented = described(mart)
        if mart == "account_features":
            documented |= described("account_snapshots")
            usage = {c for c in built if c.split("__")[0] in metrics and "__" in c}
            assert {c.split("__")[0] for c in usage} == metrics, "a declared metric has no column"
            documented |= usage
        assert built - documented == set(), f"{mart}: columns without a description"
        assert set(node["columns"]) - built == set(), f"{mart}: documented columns not built"
