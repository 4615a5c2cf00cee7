"""Render the dbt exposures of the BI serving file and of every reverse-ETL sync.

    .venv/bin/python scripts/render_exposures.py          # rewrite the exposures file
    .venv/bin/python scripts/render_exposures.py --check  # exit 1 if it is out of date

Writes dbt_project/models/pipeline/_delivery__exposures.yml from the serving tables of
flows/delivery/publish.py (`PUBLISHED`) and the syncs of config/syncs.yml, so dbt's lineage runs
from the extracts through the marts and the pipeline's score tables (declared as sources in
_pipeline__sources.yml) to the BI tools and each destination. The file is never edited by hand:
tests/dbt/test_analyst_loop.py fails when it differs from what this script renders, so a new sync or
serving table cannot leave the lineage silently.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from flows.delivery.publish import PUBLISHED
from flows.delivery.sync_config import CsvDestination, HttpDestination, SyncSpec, load_syncs

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "dbt_project" / "models" / "pipeline" / "_delivery__exposures.yml"
SYNCS = ROOT / "config" / "syncs.yml"
COMMAND = ".venv/bin/python scripts/render_exposures.py"
OWNER = {"name": "expansion pipeline"}

HEADER = f"""\
# Generated from flows/delivery/publish.py (PUBLISHED) and config/syncs.yml by
# scripts/render_exposures.py. Do not edit by hand: change those, then run `{COMMAND}`.
"""


def _node(relation: str) -> str:
    """A warehouse relation as dbt names it: a mart is a model, the rest a source."""
    schema, table = relation.split(".", 1)
    return f"ref('{table}')" if schema == "marts" else f"source('{schema}', '{table}')"


def _serving() -> dict[str, Any]:
    tables = ", ".join(f"`{t}`" for t in PUBLISHED)
    return {
        "name": "serving_file",
        "label": "BI serving tables",
        "type": "dashboard",
        "owner": dict(OWNER),
        "description": (
            "What BI tools read: the serving DuckDB file (`<serving>/expansion.duckdb`, with "
            "`_publication` naming the version in place) and its Parquet copies. Tables "
            f"{tables}, each a copy of the warehouse relation it depends on, swapped in whole "
            "by every publish (flows/delivery/publish.py)."
        ),
        "depends_on": [_node(relation) for relation in PUBLISHED.values()],
        "meta": {"serving_tables": dict(PUBLISHED)},
    }


def _destination(spec: SyncSpec) -> str:
    dest = spec.destination
    if isinstance(dest, HttpDestination):  # the host only: a URL may carry a token
        return f"http {urlsplit(dest.url).netloc}"
    return f"{dest.type} {dest.path if isinstance(dest, CsvDestination) else dest.table}"


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _sync(spec: SyncSpec, syncs: Path) -> dict[str, Any]:
    if spec.source not in PUBLISHED:
        raise ValueError(
            f"{syncs}: sync {spec.name} reads {spec.source!r}, not a serving table "
            f"({', '.join(PUBLISHED)})"
        )
    return {
        "name": spec.name,
        "label": f"sync {spec.name} ({_destination(spec)})",
        "type": "application",
        "owner": dict(OWNER),
        "description": (
            f"Reverse-ETL sync `{spec.name}` ({_shown(syncs)}): the serving table "
            f"`{spec.source}`, one record per `{spec.key}`, {spec.mode} into "
            f"{_destination(spec)}; `meta.fields` maps each destination field to its column."
        ),
        "depends_on": [_node(PUBLISHED[spec.source])],
        "meta": {
            "destination": spec.destination.type,
            "mode": spec.mode,
            "key": spec.key,
            "fields": dict(spec.fields),
        },
    }


def render(syncs: Path = SYNCS) -> str:
    exposures = [_serving(), *(_sync(spec, syncs) for spec in load_syncs(syncs))]
    body = yaml.safe_dump({"exposures": exposures}, sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--syncs", type=Path, default=SYNCS, help="syncs file (config/syncs.yml)")
    args = parser.parse_args(argv)
    text = render(args.syncs)
    current = OUT.read_text(encoding="utf-8") if OUT.exists() else None
    if args.check:
        if current != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
