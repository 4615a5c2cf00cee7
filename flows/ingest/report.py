"""What one load did, as `load_sources` returns it: the files loaded, skipped and copied, the
rows in raw per table, the rows or files quarantined."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from flows.ingest.readers import Violation


@dataclass
class LoadedFile:
    """One extract of a load: its table (`source.table`), rows kept, checksum, watermark."""

    table: str
    path: str
    rows: int
    sha256: str
    quarantined_rows: int = 0
    watermark: str | None = None
    status: str = "loaded"  # loaded | quarantined (the whole file)


@dataclass(frozen=True)
class DuplicateFile:
    """A new file with the same content (SHA-256) as one loaded before or earlier in this run."""

    path: str
    same_as: str


@dataclass
class LoadReport:
    """Everything one load did; `quarantined` holds the problems it set aside."""

    run_id: str
    loaded: list[LoadedFile] = field(default_factory=list)
    skipped_files: int = 0
    duplicates: list[DuplicateFile] = field(default_factory=list)
    raw_rows: dict[str, int] = field(default_factory=dict)
    quarantined: list[Violation] = field(default_factory=list)

    @property
    def rows_by_table(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.loaded:
            out[f.table] = out.get(f.table, 0) + f.rows
        return out

    @property
    def quarantined_by_table(self) -> dict[str, int]:
        return dict(Counter(v.table for v in self.quarantined))
