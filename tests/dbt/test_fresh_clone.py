"""A fresh clone, before any data: `make install` runs `expansion init`, and then a plain
`cd dbt_project && dbt build` (no flag, no environment variable) builds every model and passes
every test on the empty raw schema. Without init there is no warehouse to connect to."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.run.init import init_state
from flows.settings import Settings
from flows.warehouse import Warehouse
from tests.dbt.test_analyst_loop import copy_clone, plain_dbt


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Path:
    return copy_clone(tmp_path / "clone")


def test_dbt_build_passes_on_a_fresh_clone_after_init(
    fresh_clone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(project_dir=fresh_clone, home=fresh_clone / "state")
    monkeypatch.chdir(fresh_clone / "dbt_project")
    assert not plain_dbt(["debug"], monkeypatch).success  # no warehouse: dbt cannot connect

    made = init_state(settings)
    assert settings.warehouse.is_file() and len(made) == 2
    assert (settings.home.stat().st_mode & 0o777) == 0o700
    before = settings.warehouse.stat().st_mtime_ns
    assert init_state(settings) == [] and settings.warehouse.stat().st_mtime_ns == before

    result = plain_dbt(["build"], monkeypatch)
    assert result.success, result.exception
    statuses = {str(getattr(r.status, "value", r.status)) for r in result.result.results}
    assert statuses <= {"success", "pass", "no-op"}, statuses  # no-op: ephemeral, hooks
    with Warehouse.from_settings(settings).connect(read_only=True) as con:
        row = con.execute("select count(*) from marts.account_features").fetchone()
        metrics = con.execute("select count(*) from raw.config__usage_metrics").fetchone()
    assert row == (0,)  # empty sources: empty marts
    assert metrics is not None and metrics[0] > 0  # the business's metrics are declared
