"""Landing-zone connector: export files under `<url>/<table>/` on any fsspec filesystem."""

from __future__ import annotations

import hashlib
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from flows.errors import TransientSourceError
from flows.ingest.connectors import Extract, Ledger
from flows.ingest.contract import Table

SUFFIXES = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".jsonl": "json",
    ".jsonl.gz": "json",
    ".ndjson": "json",
    ".ndjson.gz": "json",
}


def format_of(name: str) -> str | None:
    lowered = name.lower()
    for suffix, fmt in SUFFIXES.items():
        if lowered.endswith(suffix):
            return fmt
    return None


class FilesConnector:
    """New files of one source: `<url>/<table>/**/*.{csv,csv.gz,parquet,jsonl[.gz]}`.

    `url` is a local path or any fsspec URL (`file://`, `memory://`, `s3://` with the matching
    fsspec package installed, ...). Non-local filesystems are registered with DuckDB by the
    loader, which reads the files straight from them.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.root = self.root.rstrip("/")

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def _uri(self, path: str) -> str:
        if self.is_local:
            return path
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{protocol}://{path.lstrip('/')}" if protocol != "memory" else f"memory://{path}"

    def sha256(self, path: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def extracts(self, table: Table, ledger: Ledger) -> list[Extract]:
        folder = f"{self.root}/{table.name}"
        try:
            if not self.fs.isdir(folder):
                return []
            paths = sorted(
                p
                for p in self.fs.find(folder)
                if format_of(p) and not p.split("/")[-1].startswith(".")
            )
            out = []
            for path in paths:
                fingerprint = self.sha256(path)
                uri = self._uri(path)
                if ledger.seen(fingerprint, uri):  # loaded before, or a copy under a new name
                    continue
                fmt = format_of(path)
                assert fmt is not None
                out.append(Extract(table, uri, uri, fingerprint, fmt))
            return out
        except (OSError, TimeoutError) as exc:
            if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
                raise
            raise TransientSourceError(f"cannot list or read {folder}: {exc}") from exc
