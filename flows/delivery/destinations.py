"""Reverse-ETL destinations: CSV files for a CRM bulk import, a PostgreSQL table, an HTTP API.

Each destination gets the changed records of one sync (`_operation`, `_key`, `_hash` and the
mapped fields) and answers which keys it accepted, which it rejected (with the reason) and, in
`update_only` mode, which it skipped because it holds no record of that key. Before a dry run
each is checked (`Writer.check`): reached, and able to take the records, without changing it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from flows.delivery.destination_base import Check, DestinationResult, Writer
from flows.delivery.destination_http import HttpWriter
from flows.delivery.destination_postgres import PostgresWriter
from flows.delivery.sync_config import SyncSpec
from flows.secrets import read_secret

__all__ = ["CsvWriter", "DestinationResult", "Writer", "build_destination"]


def build_destination(spec: SyncSpec, sync_dir: Path) -> Writer:
    dest = spec.destination
    if dest.type == "csv":
        return CsvWriter(spec, sync_dir / dest.path)
    if dest.type == "postgres":
        dsn = read_secret(dest.dsn_env)
        if not dsn:
            raise ValueError(
                f"sync {spec.name}: environment variable {dest.dsn_env} (dsn_env) is not set "
                "and no secret file of that name is in EXPANSION_SECRETS_DIR"
            )
        return PostgresWriter(spec, dsn, dest.table)
    return HttpWriter(spec)


# --- CSV for a CRM bulk import ----------------------------------------------------------------


class CsvWriter:
    """Only the changed rows, one file per run, written whole then renamed into place. In
    `update_only` mode every row goes as `update`: the CRM's import in update mode matches
    records by key and skips the ones it does not hold (the file cannot tell which)."""

    def __init__(self, spec: SyncSpec, out_dir: Path) -> None:
        self.spec, self.out_dir = spec, out_dir

    def check(self, changes: pd.DataFrame) -> Check:
        folder = self.out_dir
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(
                f"sync {self.spec.name}: cannot write CSV files under {self.out_dir} "
                f"({folder} is not a writable folder)"
            )
        return Check(f"folder {self.out_dir} writable")

    def send(self, changes: pd.DataFrame, run_id: str, *, force: bool = False) -> DestinationResult:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        final = self.out_dir / f"{self.spec.name}_{stamp}_{run_id[:8]}.csv"
        tmp = self.out_dir / f".{final.name}.tmp"
        frame = changes[["_operation", *self.spec.fields]].rename(
            columns={"_operation": "Operation"}
        )
        frame.to_csv(tmp, index=False)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return DestinationResult(accepted=set(changes["_key"]), failed={}, files=[str(final)])
