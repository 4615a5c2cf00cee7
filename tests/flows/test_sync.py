from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest

from flows.sync import SyncSpec, load_syncs, run_sync


def _serving(path: Path, rows: list[tuple[str, float]]) -> Path:
    con = duckdb.connect(str(path))
    con.execute("create or replace table account_scores (account_id varchar, p_expansion double)")
    con.executemany("insert into account_scores values (?, ?)", rows)
    con.close()
    return path


def _spec(mode: str = "upsert") -> SyncSpec:
    return SyncSpec.model_validate(
        {
            "name": "crm",
            "source": "account_scores",
            "key": "account_id",
            "mode": mode,
            "destination": {"type": "csv", "path": "out"},
            "fields": {"AccountId": "account_id", "Score__c": "p_expansion"},
        }
    )


def _rows(path: str) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_sends_only_what_changed(tmp_path: Path) -> None:
    serving = _serving(tmp_path / "s.duckdb", [("A", 0.1), ("B", 0.2), ("C", 0.3)])
    first = run_sync(_spec(), serving, tmp_path / "sync", "r1")
    assert (first.inserted, first.updated, first.deleted) == (3, 0, 0)
    assert [r["AccountId"] for r in _rows(first.files[0])] == ["A", "B", "C"]

    assert run_sync(_spec(), serving, tmp_path / "sync", "r2").sent == 0

    _serving(serving, [("A", 0.1), ("B", 0.25), ("D", 0.4)])
    third = run_sync(_spec(), serving, tmp_path / "sync", "r3")
    assert (third.inserted, third.updated, third.deleted) == (1, 1, 0)  # upsert never deletes
    assert {(r["Operation"], r["AccountId"]) for r in _rows(third.files[0])} == {
        ("update", "B"),
        ("insert", "D"),
    }


def test_mirror_deletes_and_dry_run_sends_nothing(tmp_path: Path) -> None:
    serving = _serving(tmp_path / "s.duckdb", [("A", 0.1), ("B", 0.2)])
    run_sync(_spec("mirror"), serving, tmp_path / "sync", "r1")
    _serving(serving, [("A", 0.1)])
    dry = run_sync(_spec("mirror"), serving, tmp_path / "sync", "r2", dry_run=True)
    assert (dry.deleted, dry.files) == (1, [])
    real = run_sync(_spec("mirror"), serving, tmp_path / "sync", "r3")
    assert _rows(real.files[0]) == [{"Operation": "delete", "AccountId": "B", "Score__c": ""}]
    assert run_sync(_spec("mirror"), serving, tmp_path / "sync", "r4").sent == 0


def test_update_only_never_creates(tmp_path: Path) -> None:
    serving = _serving(tmp_path / "s.duckdb", [("A", 0.1)])
    assert run_sync(_spec("update_only"), serving, tmp_path / "sync", "r1").sent == 0


def test_config_rejects_unsafe_identifiers(tmp_path: Path) -> None:
    cfg = tmp_path / "syncs.yml"
    cfg.write_text(
        "syncs:\n  - name: x\n    source: account_scores\n    key: account_id\n"
        "    destination: {type: csv}\n    fields: {Id: 'account_id; drop table x'}\n"
    )
    with pytest.raises(ValueError, match="not a valid identifier"):
        load_syncs(cfg)


def test_shipped_config_loads() -> None:
    specs = load_syncs(Path(__file__).parents[2] / "config" / "syncs.yml")
    assert specs and specs[0].source == "account_scores"
