"""The runtime never invents data: a missing or empty landing zone is bad input (exit 3),
named with the path, and nothing is written anywhere."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.errors import LandingZoneEmpty
from flows.ingest.landing import check_landing_zone
from flows.settings import Settings


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("EXPANSION_LANDING_DIR", raising=False)
    return tmp_path


@pytest.mark.parametrize("made", [False, True], ids=["missing", "empty"])
def test_run_without_a_landing_zone_exits_3_and_writes_nothing(env: Path, made: bool) -> None:
    landing = env / "landng"  # a misspelled EXPANSION_LANDING_DIR
    if made:
        landing.mkdir()
    before = _tree(env)
    result = CliRunner().invoke(app, ["run"], env={"EXPANSION_LANDING_DIR": str(landing)})
    assert result.exit_code == 3, result.output
    said = " ".join(result.output.split())
    assert str(landing) in said
    assert ("is empty" if made else "is missing") in said
    assert "expansion demo-data" in said
    assert _tree(env) == before  # no state, no Prefect database, no demo data


def test_an_empty_zone_after_earlier_loads_is_a_day_with_nothing_new(env: Path) -> None:
    landing = env / "landing"
    for source in ("crm", "billing", "usage"):
        (landing / source).mkdir(parents=True)
    settings = Settings(home=env / "state", landing_dir=landing)
    with pytest.raises(LandingZoneEmpty, match="is empty"):
        check_landing_zone(settings)
    settings.warehouse.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute("create schema raw")
        con.execute("create table raw._load_ledger as select 'r1' as run_id")
    check_landing_zone(settings)  # files archived after loading: not an error


def test_a_missing_source_folder_is_named(env: Path) -> None:
    landing = env / "landing"
    (landing / "crm" / "accounts").mkdir(parents=True)
    (landing / "crm" / "accounts" / "accounts.csv").write_text("account_id\n")
    (landing / "usage").mkdir()
    with pytest.raises(LandingZoneEmpty, match=r"source folder\(s\) missing: .*billing"):
        check_landing_zone(Settings(home=env / "state", landing_dir=landing))
