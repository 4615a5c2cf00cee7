"""The landing zone is a trust boundary.

- Files outside it are never read: a link (to a file or a folder, absolute or relative, direct
  or through another link) whose target leaves the landing zone is refused, the link and its
  target named, and nothing of the load is kept; links that stay inside are followed.
- What an error quotes of a file is bounded and masked: a DSN with its password as the first
  line of an extract is never shown unmasked (message, violations, raw._quarantine, the run
  record, the console).
- Paths reach configuration as values: a landing path with a `"`, a `'`, a space, `: ` and
  `#` loads through config/sources.yml; a broken sources.yml names the landing path.

Every case loads the tiny corpus baseline (tests/reliability/corpus/baseline) with
`load_sources`, as the pipeline's first stage does; no pipeline run.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.errors import ExtractError
from flows.ingest.contract import TABLES
from flows.ingest.load import load_sources
from flows.ingest.readers import Violation
from flows.ingest.sources import load_sources_config
from flows.run.records import RunSummary, write_run_record
from flows.settings import Settings
from flows.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
BASELINE = Path(__file__).parent / "corpus" / "baseline"
SOURCES = ROOT / "config" / "sources.yml"
PASSWORD = "S3cr3t-Pw-7f1c"
DSN = f"postgresql://app:{PASSWORD}@db.internal:5432/crm"
NEW_ACCOUNT = (
    "account_id,account_name,industry,country,employee_count,segment,owner_name,owner_email,"
    "created_at,updated_at\n"
    "00777,Initech,software,US,40,smb,Sam Roe,sam@example.com,"
    "2026-10-01T09:00:00Z,2026-10-01T09:00:00Z\n"
)
# a landing path as a careless world names folders: quote, apostrophe, space, colon, hash
ODD_NAME = 'landing "zone" o\'brien: #1'


@dataclasses.dataclass(frozen=True)
class Project:
    landing: Path
    warehouse: Path
    outside: Path  # a folder beside the landing zone, with a secret file in it


def _load(project: Project, run_id: str = "boundary") -> Any:
    config = load_sources_config(SOURCES, project.landing)
    return load_sources(config, Warehouse(project.warehouse), run_id)


def _raw(warehouse: Path) -> dict[str, int]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        counts = {
            t.raw_relation: con.execute(f"select count(*) from raw.{t.raw_relation}").fetchone()
            for t in TABLES
        }
        counts["_load_ledger"] = con.execute("select count(*) from raw._load_ledger").fetchone()
        return {k: int(v[0]) if v else 0 for k, v in counts.items()}
    finally:
        con.close()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("boundary")
    project = Project(root / ODD_NAME, root / "warehouse.duckdb", root / "outside")
    shutil.copytree(BASELINE, project.landing)
    _load(project, "baseline")  # through config/sources.yml: {landing_dir} with a quote in it
    return project


@pytest.fixture
def project(tmp_path: Path, baseline: Project) -> Project:
    copy = Project(tmp_path / ODD_NAME, tmp_path / "warehouse.duckdb", tmp_path / "outside")
    shutil.copytree(baseline.landing, copy.landing)
    shutil.copyfile(baseline.warehouse, copy.warehouse)
    copy.outside.mkdir()
    (copy.outside / "accounts.csv").write_text(f"{DSN}\n00999,Leak\n")
    return copy


def test_a_landing_path_with_a_quote_and_a_space_loads(baseline: Project) -> None:
    config = load_sources_config(SOURCES, baseline.landing)
    assert {n: s.url for n, s in config.sources.items()} == {
        n: f"{baseline.landing}/{n}" for n in ("crm", "billing", "usage")
    }
    assert _raw(baseline.warehouse)["crm__accounts"] > 0


def test_a_broken_sources_config_names_the_landing_path(tmp_path: Path) -> None:
    landing = tmp_path / ODD_NAME
    path = tmp_path / "sources.yml"
    path.write_text(SOURCES.read_text().replace("default: fail", "default: sometimes"))
    with pytest.raises(ValueError) as caught:
        load_sources_config(path, landing)
    assert str(path) in str(caught.value) and repr(str(landing)) in str(caught.value)


def _file(p: Project) -> Path:
    link = p.landing / "crm" / "accounts" / "accounts_20261101.csv"
    link.symlink_to(p.outside / "accounts.csv")
    return link


def _relative(p: Project) -> Path:
    link = p.landing / "crm" / "accounts" / "accounts_20261101.csv"
    link.symlink_to(os.path.relpath(p.outside / "accounts.csv", link.parent))
    return link


def _folder(p: Project) -> Path:
    link = p.landing / "crm" / "accounts" / "more"
    link.symlink_to(p.outside, target_is_directory=True)
    return link


def _through_a_link_inside(p: Project) -> Path:
    inner = p.landing / "crm" / "staging.csv"  # inside the zone, not a table folder
    inner.symlink_to(p.outside / "accounts.csv")
    (p.landing / "crm" / "accounts" / "accounts_20261101.csv").symlink_to(inner)
    return p.landing / "crm" / "accounts" / "accounts_20261101.csv"


def _source_folder(p: Project) -> Path:
    """`<landing>/crm` itself a link to a copy elsewhere: the content is fine, the place is not."""
    shutil.copytree(p.landing / "crm", p.outside / "crm")
    shutil.rmtree(p.landing / "crm")
    (p.landing / "crm").symlink_to(p.outside / "crm", target_is_directory=True)
    return p.landing / "crm"


def _to_root(p: Project) -> Path:
    """A link to `/`: refused at once, nothing under it walked."""
    link = p.landing / "usage" / "usage_daily" / "everything"
    link.symlink_to("/", target_is_directory=True)
    return link


LINKS: dict[str, Callable[[Project], Path]] = {
    "file": _file,
    "relative file": _relative,
    "folder": _folder,
    "through a link inside": _through_a_link_inside,
    "source folder": _source_folder,
    "root": _to_root,
}


@pytest.mark.parametrize("kind", list(LINKS))
def test_a_link_out_of_the_landing_zone_is_refused_named_and_nothing_loads(
    project: Project, kind: str
) -> None:
    before = _raw(project.warehouse)
    link = LINKS[kind](project)
    with pytest.raises(ExtractError) as caught:
        _load(project)
    said = str(caught.value)
    assert str(link) in said and "outside the landing zone" in said
    assert os.readlink(link) in said  # where it points
    assert PASSWORD not in said and "Leak" not in said  # the file was not read
    assert _raw(project.warehouse) == before


def test_the_run_refuses_a_link_out_before_anything_is_written(
    project: Project, tmp_path: Path
) -> None:
    link = _file(project)
    home = tmp_path / "state"
    result = CliRunner().invoke(
        app,
        ["run"],
        env={"EXPANSION_HOME": str(home), "EXPANSION_LANDING_DIR": str(project.landing)},
    )
    assert result.exit_code == 3, result.output
    said = " ".join(result.output.split())
    assert str(link) in said and "outside the landing zone" in said
    assert not home.exists()


def test_links_that_stay_inside_the_zone_are_followed(project: Project) -> None:
    archive = project.landing / "crm" / "archive"
    archive.mkdir()
    (archive / "accounts_20261101.csv").write_text(NEW_ACCOUNT)
    (project.landing / "crm" / "accounts" / "latest.csv").symlink_to(
        archive / "accounts_20261101.csv"
    )
    (project.landing / "crm" / "accounts" / "loop").symlink_to(  # a loop is walked once
        project.landing / "crm", target_is_directory=True
    )
    before = _raw(project.warehouse)
    _load(project)
    assert _raw(project.warehouse)["crm__accounts"] == before["crm__accounts"] + 1


# --- what errors quote of a file -------------------------------------------------------------


def _dsn_extract(project: Project, tail: str = "") -> Path:
    path = project.landing / "crm" / "accounts" / "accounts_20261101.csv"
    path.write_text(f"{DSN}{tail}\n00999,Leak\n")
    return path


def _texts(exc: BaseException) -> list[str]:
    out: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        out.append(str(seen))
        out += [str(dataclasses.astuple(v)) for v in getattr(seen, "violations", [])]
        seen = seen.__cause__ or seen.__context__
    return out


def test_a_password_in_an_extract_is_masked_in_the_error_and_the_run_record(
    project: Project, tmp_path: Path
) -> None:
    path = _dsn_extract(project)
    with pytest.raises(ExtractError) as caught:
        _load(project)
    said = str(caught.value)
    assert str(path) in said and "header does not match" in said  # still says what is wrong
    assert "postgresql://app:***@db.internal:5432/crm" in said
    assert all(PASSWORD not in text for text in _texts(caught.value))

    settings = Settings(home=tmp_path / "state")
    summary = RunSummary(run_id="masked", status="failed")
    summary.error = f"ExtractError: {caught.value} (also {DSN})"  # masked even if raw
    record = write_run_record(settings, summary.__dict__).read_text()
    assert PASSWORD not in record and "app:***@" in record


def test_a_violation_masks_its_value_and_reason() -> None:
    probe = Violation("t", "f", None, None, DSN, f"found {DSN}")
    assert PASSWORD not in probe.value + probe.reason  # type: ignore[operator]


def test_a_password_in_an_extract_is_masked_in_the_quarantine(project: Project) -> None:
    _dsn_extract(project)
    with pytest.raises(ExtractError):
        _load(project, "masked")
    con = duckdb.connect(str(project.warehouse), read_only=True)
    rows = con.execute("select * from raw._quarantine where run_id = 'masked'").fetchall()
    con.close()
    assert rows and PASSWORD not in str(rows)


def test_a_huge_first_line_is_bounded_in_the_error(project: Project) -> None:
    _dsn_extract(project, tail="," + ",".join(f"column_{i}" for i in range(5_000)))
    with pytest.raises(ExtractError) as caught:
        _load(project)
    assert len(str(caught.value)) < 20_000
    assert all(len(text) < 20_000 for text in _texts(caught.value)[:1])
    assert PASSWORD not in str(caught.value)
