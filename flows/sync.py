"""Reverse-ETL: send changed score records from the serving file to destinations.

Syncs are declared in `config/syncs.yml`. For each sync the mapped fields of every source row
are hashed; a ledger (`<sync dir>/ledger.duckdb`) keeps the hash each destination last
accepted per key. A run sends only inserted, changed and (in mirror mode) deleted records,
then records them in the ledger in the same step; if the destination write fails the ledger is
untouched, so the records are sent again next run.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import yaml
from pydantic import BaseModel, Field, field_validator

log = logging.getLogger(__name__)

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _ident(value: str, what: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(f"{what} {value!r} is not a valid identifier (letters, digits, _)")
    return value


class Destination(BaseModel):
    type: Literal["csv"]
    path: str = "."


class SyncSpec(BaseModel):
    name: str
    source: str
    key: str
    mode: Literal["upsert", "update_only", "mirror"] = "upsert"
    destination: Destination
    fields: dict[str, str] = Field(min_length=1)

    @field_validator("name", "source", "key")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return _ident(value, "sync name/source/key")

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, str]) -> dict[str, str]:
        for dest, src in value.items():
            _ident(dest, "destination field")
            _ident(src, "source column")
        return value


@dataclass
class SyncReport:
    name: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    dry_run: bool = False
    files: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return self.inserted + self.updated + self.deleted


def load_syncs(path: Path) -> list[SyncSpec]:
    try:
        doc: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"sync config {path} does not exist") from None
    specs = [SyncSpec.model_validate(s) for s in doc.get("syncs", [])]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: sync names must be unique, got {names}")
    return specs


def _diff(con: duckdb.DuckDBPyConnection, spec: SyncSpec) -> None:
    """Fill temp table `_changes` with (operation, key, hash, mapped fields...)."""
    src_cols = list(spec.fields.values())
    present = {r[0] for r in con.execute(f"describe serving.main.{spec.source}").fetchall()}
    missing = [c for c in [spec.key, *src_cols] if c not in present]
    if missing:
        raise ValueError(
            f"sync {spec.name}: source table {spec.source} has no column(s) {', '.join(missing)}"
        )
    mapped = ", ".join(f'"{src}" as "{dest}"' for dest, src in spec.fields.items())
    packed = ", ".join(f'"{dest}" := "{dest}"' for dest in spec.fields)
    con.execute(
        f"""
        create or replace temp table _src as
        select cast("{spec.key}" as varchar) as _key, {mapped}
        from serving.main.{spec.source}
        """
    )
    con.execute(
        f"create or replace temp table _src_h as select *, md5(to_json(struct_pack({packed}))) as _hash from _src"
    )
    ops = ", ".join(
        f"'{o}'" for o in (["update"] if spec.mode == "update_only" else ["insert", "update"])
    )
    nulls = ", ".join(
        f'l.record_key as "{d}"' if src == spec.key else f'null as "{d}"'
        for d, src in spec.fields.items()
    )
    con.execute(
        f"""
        create or replace temp table _changes as
        with ledger as (
            select record_key, record_hash from main.sync_ledger where sync_name = $name
        ),
        changed as (
            select case when l.record_key is null then 'insert' else 'update' end as _operation,
                   s.*
            from _src_h s left join ledger l on l.record_key = s._key
            where l.record_hash is distinct from s._hash
        )
        select * from changed where _operation in ({ops})
        union all
        select 'delete', l.record_key, {nulls}, null
        from ledger l anti join _src_h s on s._key = l.record_key
        where $mirror
        """,
        {"name": spec.name, "mirror": spec.mode == "mirror"},
    )


def run_sync(
    spec: SyncSpec, serving_db: Path, sync_dir: Path, run_id: str, *, dry_run: bool = False
) -> SyncReport:
    """Diff one sync against its ledger and send the changes (or only report them)."""
    sync_dir.mkdir(parents=True, exist_ok=True)
    report = SyncReport(name=spec.name, dry_run=dry_run)
    con = duckdb.connect(str(sync_dir / "ledger.duckdb"))
    try:
        serving = serving_db.as_posix().replace("'", "''")
        con.execute(f"attach '{serving}' as serving (read_only)")
        con.execute(
            "create table if not exists main.sync_ledger (sync_name varchar, record_key varchar, "
            "record_hash varchar, run_id varchar, synced_at timestamp)"
        )
        _diff(con, spec)
        counts = dict(
            con.execute("select _operation, count(*) from _changes group by 1").fetchall()
        )
        report.inserted = counts.get("insert", 0)
        report.updated = counts.get("update", 0)
        report.deleted = counts.get("delete", 0)
        if dry_run or report.sent == 0:
            return report
        if spec.destination.type == "csv":
            report.files.append(_write_csv(con, spec, sync_dir, run_id))
        now = datetime.now(UTC).replace(tzinfo=None)
        con.execute("begin transaction")
        con.execute(
            "delete from main.sync_ledger where sync_name = ? and record_key in "
            "(select _key from _changes)",
            [spec.name],
        )
        con.execute(
            "insert into main.sync_ledger select ?, _key, _hash, ?, ? from _changes "
            "where _operation <> 'delete'",
            [spec.name, run_id, now],
        )
        con.execute("commit")
    finally:
        con.close()
    log.info(
        "sync %s: %s inserted, %s updated, %s deleted%s",
        spec.name,
        report.inserted,
        report.updated,
        report.deleted,
        " (dry run)" if dry_run else "",
    )
    return report


def _write_csv(con: duckdb.DuckDBPyConnection, spec: SyncSpec, sync_dir: Path, run_id: str) -> str:
    out_dir = sync_dir / spec.destination.path
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    final = out_dir / f"{spec.name}_{stamp}_{run_id[:8]}.csv"
    tmp = out_dir / f".{final.name}.tmp"
    cols = ", ".join(f'"{d}"' for d in spec.fields)
    con.execute(
        f'copy (select _operation as "Operation", {cols} from _changes order by _key) '
        f"to '{tmp.as_posix()}' (header, delimiter ',')"
    )
    os.replace(tmp, final)
    return str(final)
