"""DuckDB's memory, threads and spill folder come from the machine (a share of the RAM this
process may use, one thread per core, a folder under the state home) and reach every
connection, Python's and dbt's, through one place (flows/warehouse.py `session_settings`)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from flows import machine
from flows import warehouse as warehouse_module
from flows.machine import Memory
from flows.settings import PROJECT_DIR, Settings
from flows.warehouse import Warehouse, describe_session, session_settings, spill_budget

GiB = 2**30


def _machine(tmp_path: Path, cgroup_lines: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A made-up /proc (24 GiB of RAM) and /sys/fs/cgroup."""
    proc, cgroup = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal:       {24 * 2**20} kB\nMemFree: 1 kB\n")
    (proc / "self" / "cgroup").write_text(cgroup_lines)
    for name, text in files.items():
        (cgroup / name).parent.mkdir(parents=True, exist_ok=True)
        (cgroup / name).write_text(text)
    cgroup.mkdir(exist_ok=True)
    return proc, cgroup


def test_memory_is_the_cgroup_limit_when_one_is_set(tmp_path: Path) -> None:
    v2 = _machine(
        tmp_path / "v2",
        "0::/job\n",
        {"cgroup.controllers": "cpu memory", "job/memory.max": str(6 * GiB), "memory.max": "max"},
    )
    assert machine.memory(*v2) == Memory(6 * GiB, "cgroup v2 memory.max")
    v1 = _machine(
        tmp_path / "v1",
        "4:memory:/job\n1:cpu:/\n",
        {"memory/job/memory.limit_in_bytes": str(5 * GiB)},
    )
    assert machine.memory(*v1) == Memory(5 * GiB, "cgroup v1 memory.limit_in_bytes")
    # v1 writes 2**63 rounded down to a page when there is no limit; a limit above RAM is none
    none = _machine(
        tmp_path / "none",
        "4:memory:/\n",
        {"memory/memory.limit_in_bytes": "9223372036854771712"},
    )
    assert machine.memory(*none) == Memory(24 * GiB, "MemTotal")
    above = _machine(tmp_path / "above", "0::/\n", {"cgroup.controllers": "", "memory.max": "1e15"})
    assert machine.memory(*above) == Memory(24 * GiB, "MemTotal")


def test_cores_are_bounded_by_a_cpu_quota(tmp_path: Path) -> None:
    quota = _machine(
        tmp_path / "q", "0::/job\n", {"cgroup.controllers": "cpu", "job/cpu.max": "150000 100000"}
    )
    assert 1 <= machine.cores(*quota) <= 2  # 1.5 cores: 2, or fewer by affinity
    free = _machine(tmp_path / "f", "0::/\n", {"cgroup.controllers": "cpu", "cpu.max": "max 1"})
    assert machine.cores(*free) >= 1


@pytest.fixture
def eight_gib(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine whose process may use 8 GiB and has 3 cores."""
    monkeypatch.setattr("flows.settings.machine_memory", lambda: Memory(8 * GiB, "MemTotal"))
    monkeypatch.setattr("flows.settings.machine_cores", lambda: 3)
    for name in ("EXPANSION_DUCKDB_MEMORY_LIMIT", "EXPANSION_DUCKDB_THREADS", "EXPANSION_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("eight_gib")
def test_defaults_are_derived_from_the_machine_and_a_setting_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path / "state")
    assert settings.duckdb_memory_limit == f"{int(8 * 1024 * 0.4)}MiB"  # the default share
    assert settings.duckdb_threads == 3
    assert settings.duckdb_temp_dir == (tmp_path / "state" / "tmp").resolve()
    assert settings.non_default() == {"EXPANSION_HOME": str((tmp_path / "state").resolve())}

    monkeypatch.setenv("EXPANSION_DUCKDB_MEMORY_SHARE", "0.25")
    shared = Settings(home=tmp_path / "state")
    assert shared.duckdb_memory_limit == "2048MiB"
    assert shared.non_default()["EXPANSION_DUCKDB_MEMORY_SHARE"] == "0.25"
    assert "EXPANSION_DUCKDB_MEMORY_LIMIT" not in shared.non_default()  # derived, not set

    monkeypatch.setenv("EXPANSION_DUCKDB_MEMORY_LIMIT", "3GB")  # an explicit limit wins
    explicit = Settings(home=tmp_path / "state")
    assert explicit.duckdb_memory_limit == "3GB"
    assert explicit.non_default()["EXPANSION_DUCKDB_MEMORY_LIMIT"] == "3GB"
    with pytest.raises(ValueError, match="duckdb_memory_share"):
        Settings(duckdb_memory_share=0.95)


def test_non_default_lists_what_was_set_masked(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        full_refresh=True,
        dask_address="tcp://user:hunter22@10.0.0.5:8786",
        reasons_top_n=0,
    )
    shown = settings.non_default()
    assert shown["EXPANSION_FULL_REFRESH"] == "true"
    assert shown["EXPANSION_REASONS_TOP_N"] == "0"
    assert "hunter22" not in shown["EXPANSION_DASK_ADDRESS"]
    assert "EXPANSION_LOCALE" not in shown and "EXPANSION_DUCKDB_TEMP_DIR" not in shown


def _session(con: object) -> dict[str, str]:
    rows = con.execute(  # type: ignore[attr-defined]
        "select name, value from duckdb_settings() where name in "
        "('memory_limit', 'threads', 'temp_directory', 'TimeZone')"
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def test_every_connection_gets_the_session_read_frame_too(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "state", duckdb_memory_limit="300MB", duckdb_threads=1)
    warehouse = Warehouse.from_settings(settings)
    session = session_settings(settings)
    spill = Path(session["temp_directory"])
    assert spill.parent == settings.duckdb_temp_dir and spill.name.startswith("warehouse.duckdb")
    assert re.fullmatch(r"\d+MiB", session["max_temp_directory_size"])
    with warehouse.connect() as con:
        con.execute("create table t as select range as i, random() as r from range(3000000)")
        # a sort bigger than the limit spills to this file's folder under the state home
        con.execute("set memory_limit = '20MB'")
        con.execute("select count(*) from (select * from t order by r)").fetchall()
        con.execute("set memory_limit = '300MB'")
        # a second connection to the same instance once it has spilled (DuckDB refuses to SET
        # temp_directory then, even to the same folder)
        with warehouse.connect() as again:
            assert _session(again)["temp_directory"] == str(spill)
    frame = warehouse.read_frame(
        "select current_setting('memory_limit') as m, current_setting('threads') as t, "
        "current_setting('temp_directory') as d"
    )
    assert frame.to_dict("records") == [{"m": "286.1 MiB", "t": 1, "d": str(spill)}]
    # another file (the serving file) spills to a folder of its own
    serving = session_settings(settings) | warehouse.file(tmp_path / "s.duckdb").session()
    assert serving["temp_directory"] != str(spill)
    assert "memory_limit=300MB (set)" in describe_session(settings)


def test_dbt_gets_the_same_session(tmp_path: Path) -> None:
    """dbt opens the warehouse through profiles/profiles.yml with the values
    `Settings.dbt_env` passes: the same as every Python connection's."""
    from dbt.cli.main import dbtRunner

    from flows.transform.dbt import dbt_env

    project = tmp_path / "project"
    (project / "dbt_project").mkdir(parents=True)
    (project / "dbt_project" / "dbt_project.yml").write_text(
        "name: memcheck\nversion: '1.0'\nconfig-version: 2\nprofile: expansion\n"
    )
    shutil.copytree(PROJECT_DIR / "profiles", project / "profiles")
    settings = Settings(
        home=tmp_path / "state", project_dir=project, duckdb_memory_limit="700MB", duckdb_threads=1
    )
    query = (
        "select current_setting('memory_limit') as m, current_setting('threads') as t, "
        "current_setting('temp_directory') as d, current_setting('max_temp_directory_size') as x"
    )
    args = ["show", "--inline", query, "--output", "json", "--log-format", "json", "--quiet"]
    args += [
        "--project-dir",
        str(project / "dbt_project"),
        "--profiles-dir",
        str(project / "profiles"),
    ]
    args += ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]
    with dbt_env(settings):
        result = dbtRunner().invoke(args)
    assert result.success, result.exception
    row = dict(result.result.results[0].agate_table.rows[0])
    with Warehouse.from_settings(settings).connect() as con:
        python = con.execute(query).fetchone()
    assert python is not None
    assert (row["m"], int(row["t"]), row["d"], row["x"]) == (
        python[0],
        python[1],
        python[2],
        python[3],
    )
    assert row["d"] == session_settings(settings)["temp_directory"]


def test_only_the_warehouse_connects_to_duckdb() -> None:
    """Every DuckDB connection of the pipeline goes through flows/warehouse.py, so none
    misses the session (the memory limit above all)."""
    allowed = {"flows/warehouse.py"}
    found = {
        str(path.relative_to(PROJECT_DIR))
        for folder in ("flows", "models")
        for path in (PROJECT_DIR / folder).rglob("*.py")
        if "duckdb.connect(" in path.read_text()
    }
    assert found <= allowed, sorted(found - allowed)


def test_spill_budget_holds_still_while_the_free_disk_moves_a_little(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget reaches dbt's profile, whose every change makes dbt parse the whole project
    again ("profile has changed"): it must not move with each file a run writes."""
    free = {"bytes": 75 * 2**30}
    monkeypatch.setattr(warehouse_module, "free_disk", lambda root: free["bytes"])

    def budget() -> str:
        spill_budget.cache_clear()
        return spill_budget(tmp_path)

    first = budget()
    free["bytes"] -= 3 * 2**30 + 12345  # a day's extracts and spill later
    assert budget() == first == "32768MiB"  # at most half the free disk
    free["bytes"] = 60 * 2**30  # half the free disk is now below 32 GiB: the budget follows
    assert budget() == "16384MiB"
    free["bytes"] = 66 * 2**30  # back above 64 GiB free, and below again: it stays put
    assert budget() == "16384MiB"
    free["bytes"] = 63 * 2**30
    assert budget() == "16384MiB"
    free["bytes"] = 130 * 2**30  # four times the budget under the share: it grows
    assert budget() == "65536MiB"
    (tmp_path / "spill_budget").write_text("garbage")  # an unreadable record: chosen afresh
    assert budget() == "65536MiB"
    free["bytes"] = 2**19  # under 1 MiB free: what there is
    assert budget() == "1MiB"
    spill_budget.cache_clear()
