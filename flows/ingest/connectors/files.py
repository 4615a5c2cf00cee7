"""Landing-zone connector: export files under `<url>/<table>/` on any fsspec filesystem.

The landing zone is a trust boundary: a file is read only when it lies inside its source's
root (`<url>`, resolved once: a landing folder that is itself a link, to a mounted share say,
is the operator's choice). On a local filesystem every file and folder is resolved, links
included: a symbolic link whose target stays inside the root is followed (an export tool's
`latest -> 2024-05-01/`), one that leads out of it (to a file, or to a folder) is refused
with the link and its target named, and nothing of the load is kept. Folders are walked
without following links out, so a link to `/` costs nothing. Remote filesystems (s3://,
gs://, memory://, ...) have no links: a listed path must lie under the root's prefix, with no
`..` segment.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from flows.errors import ExtractError, TransientSourceError
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


class OutsideLandingZone(ExtractError):
    """A file (or folder) of the landing zone resolves to a path outside its source's root."""


def _outside(root: Path, link: Path, table: str | None) -> OutsideLandingZone:
    target = Path(os.path.realpath(link))
    shown = os.readlink(link) if link.is_symlink() else str(target)
    points = shown if str(target) == shown else f"{shown} (resolved: {target})"
    where = f" (table {table})" if table else ""
    return OutsideLandingZone(
        f"{link}{where}: a symbolic link to {points}, outside the landing zone {root}: "
        "files outside the landing zone are never read. Nothing was loaded; replace the link "
        "with the file itself, or point it inside the landing zone"
    )


def _first_link_out(zone: Path, path: Path) -> Path:
    """The first component of `path` below `zone` that is a link leading out of `zone`."""
    real_zone = Path(os.path.realpath(zone))
    current = Path(zone)
    for part in path.relative_to(zone).parts:
        current = current / part
        real = Path(os.path.realpath(current))
        if current.is_symlink() and not (real == real_zone or real.is_relative_to(real_zone)):
            return current
    return path


def local_files(
    root: Path,
    folder: Path | None = None,
    table: str | None = None,
    *,
    zone: Path | None = None,
) -> Iterator[Path]:
    """Every file under `folder` (default `root`), as a path under `folder`, walking links that
    stay inside `root` (each real folder once) and raising `OutsideLandingZone` at the first
    file or folder whose real path leaves `root`. `zone`: the landing zone `root` lies in (a
    source folder `<landing>/crm` that is a link out of `<landing>` is refused too)."""
    root = Path(root)
    real_root = Path(os.path.realpath(root))
    if zone is not None and root.is_relative_to(zone):
        real_zone = Path(os.path.realpath(zone))
        if not (real_root == real_zone or real_root.is_relative_to(real_zone)):
            raise _outside(Path(zone), _first_link_out(Path(zone), root), table)
    start = Path(folder) if folder is not None else Path(root)
    seen: set[Path] = set()

    def inside(path: Path) -> bool:
        real = Path(os.path.realpath(path))
        return real == real_root or real.is_relative_to(real_root)

    def walk(here: Path) -> Iterator[Path]:
        real = Path(os.path.realpath(here))
        if real in seen:  # a link back to a folder already walked (or a loop)
            return
        seen.add(real)
        with os.scandir(here) as entries:
            items = sorted(entries, key=lambda e: e.name)
        for entry in items:
            path = here / entry.name
            if entry.is_symlink() and not inside(path):
                raise _outside(root, path, table)
            if entry.is_dir():  # follows a link, which stays inside
                yield from walk(path)
            elif entry.is_file():
                yield path

    if not inside(start):
        raise _outside(root, start, table)
    if start.is_dir():
        yield from walk(start)


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

    def __init__(
        self,
        url: str,
        storage_options: dict[str, Any] | None = None,
        *,
        landing_zone: str | None = None,
    ) -> None:
        self.url = url
        self.landing_zone = Path(os.path.abspath(landing_zone)) if landing_zone else None
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

    def _listed(self, folder: str, table: Table) -> list[str]:
        """Every file under `folder`, refusing any that leaves the root."""
        if self.is_local:
            files = local_files(Path(self.root), Path(folder), table.name, zone=self.landing_zone)
            return [str(p) for p in files]
        prefix = self.root.rstrip("/") + "/"
        found = list(self.fs.find(folder))
        for path in found:
            if not posixpath.normpath(path).startswith(prefix) or ".." in path.split("/"):
                raise ExtractError(
                    f"{path} (table {table.name}) lies outside the landing zone {self.url}: "
                    "files outside the landing zone are never read; nothing was loaded"
                )
        return found

    def extracts(self, table: Table, ledger: Ledger) -> list[Extract]:
        folder = f"{self.root}/{table.name}"
        try:
            if self.is_local and os.path.lexists(folder) and not os.path.isdir(folder):
                return []
            if not self.is_local and not self.fs.isdir(folder):
                return []
            paths = sorted(
                p
                for p in self._listed(folder, table)
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
