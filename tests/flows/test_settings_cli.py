from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.settings import Settings, get_settings


def test_env_overrides_file_overrides_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "expansion.toml"
    config.write_text(f'home = "{tmp_path / "h"}"\nlabel_horizon_days = 60\nreasons_top_n = 5\n')
    monkeypatch.setenv("EXPANSION_CONFIG", str(config))
    monkeypatch.setenv("EXPANSION_REASONS_TOP_N", "7")
    settings = get_settings()
    assert settings.home == (tmp_path / "h").resolve()
    assert settings.label_horizon_days == 60  # from the file
    assert settings.reasons_top_n == 7  # env beats the file
    assert settings.warehouse == (tmp_path / "h" / "warehouse.duckdb").resolve()
    assert settings.dbt_env()["EXPANSION_WAREHOUSE_PATH"] == str(settings.warehouse)


def test_missing_config_file_and_unknown_keys_are_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPANSION_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        get_settings()
    bad = tmp_path / "bad.toml"
    bad.write_text("lable_horizon_days = 30\n")
    monkeypatch.setenv("EXPANSION_CONFIG", str(bad))
    with pytest.raises(ValueError, match="lable_horizon_days"):
        get_settings()


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    syncs = tmp_path / "syncs.yml"
    syncs.write_text(
        "syncs:\n  - name: crm\n    source: account_scores\n    key: account_id\n"
        "    destination: {type: postgres, dsn_env: CRM_DSN, table: crm.scores}\n"
        "    fields: {Id: account_id}\n"
        "  - name: api\n    source: account_scores\n    key: account_id\n"
        "    destination: {type: http, url: 'https://crm.example/x', "
        "headers_env: {Authorization: CRM_TOKEN}}\n"
        "    fields: {Id: account_id}\n"
    )
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path))
    monkeypatch.setenv("EXPANSION_SYNCS_CONFIG", str(syncs))
    monkeypatch.setenv("CRM_DSN", "postgresql://u:hunter2@db/x")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert "hunter2" not in result.output
    assert shown["secrets"] == {"CRM_DSN": "********", "CRM_TOKEN": "NOT SET"}
    assert shown["home"] == str(tmp_path.resolve())


def test_every_command_has_help() -> None:
    runner = CliRunner()
    commands = [
        "run",
        "demo-data",
        "sync",
        "status",
        "backfill",
        "train",
        "score",
        "publish",
        "report",
        "rollback",
        "serve",
    ]
    for command in [[], *([c] for c in commands), ["config", "show"]]:
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage" in result.output


def test_rollback_without_a_registry_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["rollback"])
    assert result.exit_code == 1
    assert "no champion to roll back from" in " ".join(result.output.split())


def test_sync_without_published_scores_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["sync", "--dry-run"])
    assert result.exit_code == 3
    assert "nothing published yet" in result.output


def test_demo_data_command_writes_a_landing_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("EXPANSION_ORACLE_DIR", str(tmp_path / "oracle"))
    result = CliRunner().invoke(
        app,
        [
            "demo-data",
            "--accounts",
            "40",
            "--months",
            "4",
            "--seed",
            "1",
            "--out",
            str(tmp_path / "landing"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "landing" / "crm" / "accounts").glob("*.csv"))
    assert (tmp_path / "oracle" / "expansion_oracle.parquet").exists()


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="label_horizon_days"):
        Settings(label_horizon_days=3)


def test_duckdb_memory_limit_takes_a_size_or_a_share_of_ram(tmp_path: Path) -> None:
    from flows.warehouse import Warehouse

    with pytest.raises(ValueError, match="duckdb_memory_limit"):
        Settings(duckdb_memory_limit="lots")
    share = Settings(duckdb_memory_limit="25%").duckdb_memory_limit
    with Warehouse(tmp_path / "w.duckdb", memory_limit=share).connect() as con:
        row = con.execute("select current_setting('memory_limit')").fetchone()
    assert row is not None and row[0].endswith("iB")  # DuckDB turned the share into a size


def test_a_locale_is_a_shipped_phrase_table(tmp_path: Path) -> None:
    assert Settings(home=tmp_path, locale="ja").locale == "ja"
    with pytest.raises(ValueError, match=r"no phrase table for locale 'fr'.*shipped: en, ja"):
        Settings(home=tmp_path, locale="fr")
