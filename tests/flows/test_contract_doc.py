"""docs/extract-contract.md is generated from the contract and must match it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import yaml

from flows.ingest.connectors.postgres import PostgresSourceSpec
from flows.ingest.contract import TABLES
from models.business import Business

ROOT = Path(__file__).resolve().parents[2]


def _renderer() -> ModuleType:
    path = ROOT / "scripts" / "render_contract_doc.py"
    spec = importlib.util.spec_from_file_location("render_contract_doc", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_document_matches_the_contract() -> None:
    renderer = _renderer()
    committed = (ROOT / "docs" / "extract-contract.md").read_text(encoding="utf-8")
    assert committed == renderer.render(), (
        "docs/extract-contract.md is out of date with flows/ingest/contract.py or flows/ingest/currencies.py; "
        "regenerate it with `.venv/bin/python scripts/render_contract_doc.py`"
    )


def test_document_covers_every_table_and_column() -> None:
    text = _renderer().render()
    for t in TABLES:
        assert f"### `{t.source}.{t.name}`" in text
        for c in t.columns:
            assert f"| `{c.name}` | {c.type} |" in text
    assert "| 0 (no decimals) |" in text and "JPY" in text
    assert "dsn_env" in text and "watermark" in text


def _yaml_examples() -> list[dict]:
    blocks = _renderer().render().split("```yaml\n")[1:]
    return [yaml.safe_load(block.split("```", 1)[0]) for block in blocks]


def test_business_example_is_a_valid_declaration() -> None:
    example = next(e for e in _yaml_examples() if "usage_metrics" in e)
    business = Business.model_validate(example)
    assert business.limited_metric_names == ["contacts_created", "records_stored"]


def test_database_config_example_is_valid_and_lists_every_required_table() -> None:
    example = next(e for e in _yaml_examples() if "sources" in e)
    billing = PostgresSourceSpec.model_validate(example["sources"]["billing"])
    required = {t.name for t in TABLES if t.source == "billing" and not t.optional}
    assert required <= set(billing.tables)
