"""Connectors: where each source's extracts come from.

A connector turns "what is new for this contract table" into `Extract`s: files DuckDB can read
(a local path or a URL of a filesystem registered with DuckDB) with a fingerprint and, for
database sources, the watermark they reach. The loader (`flows/ingest/load.py`) checks every
extract against the contract and appends it to raw, whatever connector produced it. What was
loaded before, a connector asks of the `Ledger` (`LedgerView` in `flows/ingest/ledger.py`).

Sources and their connectors are declared in `config/sources.yml` (`flows/ingest/sources.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from flows.ingest.contract import Table


@dataclass(frozen=True)
class Extract:
    table: Table
    uri: str  # what DuckDB reads: a local path, or a URL of a registered fsspec filesystem
    origin: str  # what raw's _source_file and the ledger record (file URL, db/table)
    fingerprint: str  # sha256 of the content: the same content is never loaded twice
    file_format: str  # csv | parquet | json
    watermark: str | None = None  # database sources: highest watermark value in this extract


class Ledger(Protocol):
    def seen(self, fingerprint: str, origin: str | None = None) -> bool:
        """Whether this content was loaded before (or, given `origin`, earlier in this run)."""
        ...

    def last_watermark(self, table: Table) -> str | None: ...


class Connector(Protocol):
    def extracts(self, table: Table, ledger: Ledger) -> list[Extract]:
        """The new extracts of one contract table (none when nothing new arrived)."""
        ...
