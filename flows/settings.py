"""Settings: one typed object, read from environment variables and an optional file.

Precedence (highest first): keyword arguments, environment variables (`EXPANSION_*`), the
settings file named by `EXPANSION_CONFIG` (TOML), defaults. Defaults describe the embedded
local setup: every file under the project directory, no server needed.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from flows.machine import DEFAULT_MEMORY_SHARE, machine_cores, machine_memory, mib
from models.phrasebook import shipped_locales

PROJECT_DIR = Path(__file__).resolve().parents[1]


def _default_memory_limit(data: dict[str, Any]) -> str:
    """`duckdb_memory_share` (already validated: it is declared first) of the RAM this
    process may use, in MiB."""
    share = data.get("duckdb_memory_share", DEFAULT_MEMORY_SHARE)
    return mib(int(machine_memory().total * share))


class Settings(BaseSettings):
    """Everything a run needs to know. Paths left empty are derived from `home`."""

    model_config = SettingsConfigDict(env_prefix="EXPANSION_", extra="forbid")

    target: str = Field(
        "local",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="dbt target in profiles/profiles.yml",
    )
    project_dir: Path = Field(PROJECT_DIR, description="where dbt_project/, expectations/ live")
    home: Path = Field(PROJECT_DIR / "state", description="private state: warehouse, models, runs")
    landing_dir: Path = Field(PROJECT_DIR / "data" / "landing", description="extract landing zone")
    warehouse_path: Path | None = Field(None, description="private DuckDB file the pipeline writes")
    serving_dir: Path | None = Field(None, description="published DuckDB file + Parquet for BI")
    registry_dir: Path | None = Field(None, description="trained models and the champion pointer")
    sync_dir: Path | None = Field(None, description="reverse-ETL file destination and ledger")

    expectations_dir: Path | None = Field(
        None, description="Great Expectations suites; default expectations/"
    )
    sources_config: Path | None = Field(
        None, description="connectors and bad-row policy; default config/sources.yml"
    )
    business_config: Path | None = Field(
        None,
        description="the business's usage metrics (config/business.yml format); default "
        "config/business.yml",
    )
    params_path: Path | None = Field(
        None,
        description="model parameters YAML (models, quality bars, tiers); default models/params.yaml",
    )
    reporting_currency: str = Field(
        "USD",
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 currency every amount is reported in (dbt var reporting_currency)",
    )
    locale: str = Field(
        "en",
        description="language of reasons, offers and the model report: a phrase table "
        "models/phrases/<locale>.yaml (en, ja shipped)",
    )
    full_refresh: bool = Field(False, description="reload every extract from scratch")
    freshness: Literal["enforce", "warn", "off"] = Field(
        "enforce", description="dbt source freshness: fail on error_after, or only warn, or skip"
    )
    as_of: date | None = Field(
        None,
        description="score as of this date; default: the latest complete usage day "
        "(flows/run/as_of.py)",
    )
    as_of_min_coverage: float = Field(
        0.5,
        gt=0,
        le=1,
        description="a usage day is complete (and may be the as_of) when at least this share of "
        "a typical day's accounts (the median day of the 4 weeks before it) have usage on it",
    )
    label_horizon_days: int = Field(90, ge=7, le=365)
    retrain: bool = Field(False, description="train a challenger even when a champion exists")
    reasons_top_n: int | None = Field(
        None,
        ge=0,
        description="unset: reasons for every account of a capped touch tier and the first "
        "action_list.default_tier_reasons of the default tier (models/params.yaml); set: "
        "reasons for the first N accounts of the action list instead (0: none)",
    )
    alert_probability_threshold: float = Field(
        0.3, gt=0, lt=1, description="alert when p_expansion rises past this since the last run"
    )
    daily_cron: str = Field("0 5 * * *", description="schedule of the daily run (cron)")
    retrain_cron: str = Field("0 6 * * 1", description="schedule of the weekly retrain (cron)")
    schedule_timezone: str = Field("UTC", description="IANA time zone of both schedules")
    duckdb_memory_share: float = Field(
        DEFAULT_MEMORY_SHARE,
        gt=0,
        le=0.9,
        description="share of the RAM this process may use (its cgroup limit, else the "
        "machine's) that DuckDB's memory limit defaults to; the rest is Python's (pandas "
        "frames, LightGBM) and the system's",
    )
    duckdb_memory_limit: str = Field(
        default_factory=_default_memory_limit,
        pattern=r"^\d+(\.\d+)?\s?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB|%)$",
        description="DuckDB's memory limit for dbt and every Python connection, e.g. 8GB, or a "
        "share of RAM such as 50%; default: duckdb_memory_share of the RAM this process may use",
    )
    duckdb_threads: int = Field(
        default_factory=lambda: machine_cores(),
        ge=1,
        le=256,
        description="DuckDB threads (dbt and Python); default: the cores this process may use",
    )
    duckdb_temp_dir: Path = Field(
        default_factory=lambda data: Path(data.get("home") or PROJECT_DIR / "state") / "tmp",
        description="where DuckDB spills what does not fit in memory, one folder per database "
        "file; default: <home>/tmp",
    )
    duckdb_max_temp_size: str | None = Field(
        None,
        pattern=r"^\d+(\.\d+)?\s?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="most DuckDB may spill per database file; default: half the disk space "
        "free under duckdb_temp_dir when the process first connects, rounded down to a power "
        "of two and kept from run to run while it fits (flows/warehouse.py spill_budget)",
    )
    dbt_threads: int = Field(2, ge=1, le=64)
    dbt_node_tasks: bool = Field(
        False, description="run dbt through PrefectDbtRunner: one Prefect task per dbt node"
    )
    dbt_build: Literal["changed", "all"] = Field(
        "changed",
        description="changed: the daily dbt build selects the models downstream of sources with "
        "new rows since the last successful build, plus the as_of models "
        "(flows/transform/selection.py); all: every node, every run",
    )

    dask_address: str | None = Field(
        None,
        description="Dask scheduler (e.g. tcp://10.0.0.5:8786): scoring partitions and the final "
        "LightGBM refit run on that cluster; unset: everything in this process",
    )
    dask_partitions: int = Field(
        8, ge=1, le=10_000, description="partitions of the accounts (and training rows) on Dask"
    )
    dask_shared_dir: str | None = Field(
        None,
        description="folder (path or fsspec URL) the pipeline and every Dask worker can reach, "
        "for partition files; default <home>/dask, right for workers on this machine",
    )

    serving_dsn_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="name of the environment variable (or secret file) holding the DSN of a "
        "PostgreSQL database every publish also writes the serving tables to; unset: the "
        "DuckDB file and Parquet only (flows/delivery/serving_postgres.py)",
    )
    serving_schema: str = Field(
        "expansion",
        pattern=r"^[a-z_][a-z0-9_]{0,57}$",
        description="PostgreSQL schema of the serving tables (swapped whole at each publish "
        "through <schema>__new and <schema>__old)",
    )
    serving_readers: str = Field(
        "",
        pattern=r"^\s*([A-Za-z_][A-Za-z0-9_$]*(\s*,\s*[A-Za-z_][A-Za-z0-9_$]*)*)?\s*$",
        description="comma-separated PostgreSQL roles granted USAGE on the serving schema and "
        "SELECT on its tables at every publish (grants already on the schema are kept too)",
    )

    syncs_config: Path | None = Field(
        None, description="reverse-ETL syncs; default config/syncs.yml"
    )
    mlflow_experiment: str = Field(
        "expansion",
        min_length=1,
        description="MLflow experiment each training is logged to, when MLFLOW_TRACKING_URI "
        "is set (flows/tracking.py)",
    )
    mlflow_model: str = Field(
        "expansion",
        min_length=1,
        description="MLflow registered model the trained versions are registered as; its alias "
        "`champion` follows the file registry's champion",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="the pipeline's loggers: INFO says what happened, DEBUG why"
    )
    secrets_dir: Path | None = Field(
        None,
        description="folder of secret files (one file per environment variable name), outside "
        "the repository; an environment variable of the same name wins (flows/secrets.py)",
    )

    @field_validator("locale", mode="after")
    @classmethod
    def _shipped_locale(cls, value: str) -> str:
        shipped = shipped_locales()
        if value not in shipped:
            raise ValueError(
                f"no phrase table for locale {value!r} in models/phrases/ (shipped: "
                f"{', '.join(shipped)}); a language is one file <locale>.yaml there"
            )
        return value

    @field_validator("project_dir", "home", "landing_dir", "duckdb_temp_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("EXPANSION_CONFIG")
        if config_file:
            path = Path(config_file).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"EXPANSION_CONFIG={config_file}: no such settings file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # Derived paths ---------------------------------------------------------------------------
    @property
    def warehouse(self) -> Path:
        return (self.warehouse_path or self.home / "warehouse.duckdb").resolve()

    @property
    def serving(self) -> Path:
        return (self.serving_dir or self.home / "serving").resolve()

    @property
    def serving_db(self) -> Path:
        return self.serving / "expansion.duckdb"

    @property
    def serving_reader_roles(self) -> tuple[str, ...]:
        return tuple(r.strip() for r in self.serving_readers.split(",") if r.strip())

    @property
    def registry(self) -> Path:
        return (self.registry_dir or self.home / "models").resolve()

    @property
    def sync(self) -> Path:
        return (self.sync_dir or self.home / "sync").resolve()

    @property
    def sources_file(self) -> Path:
        return (self.sources_config or self.project_dir / "config" / "sources.yml").resolve()

    @property
    def business_file(self) -> Path:
        return (self.business_config or self.project_dir / "config" / "business.yml").resolve()

    @property
    def syncs_file(self) -> Path:
        return (self.syncs_config or self.project_dir / "config" / "syncs.yml").resolve()

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def dbt_project(self) -> Path:
        return self.project_dir / "dbt_project"

    @property
    def profiles(self) -> Path:
        return self.project_dir / "profiles"

    @property
    def expectations(self) -> Path:
        return (self.expectations_dir or self.project_dir / "expectations").resolve()

    def dbt_env(self) -> dict[str, str]:
        """Environment variables profiles/profiles.yml reads: the target, the warehouse file,
        and the DuckDB session of every connection (`flows.warehouse.session_settings`)."""
        from flows.warehouse import session_settings

        session = session_settings(self)
        return {
            "EXPANSION_TARGET": self.target,
            "EXPANSION_WAREHOUSE_PATH": str(self.warehouse),
            "EXPANSION_DBT_THREADS": str(self.dbt_threads),
            "EXPANSION_DUCKDB_MEMORY_LIMIT": session["memory_limit"],
            "EXPANSION_DUCKDB_THREADS": session["threads"],
            "EXPANSION_DUCKDB_TEMP_DIRECTORY": session["temp_directory"],
            "EXPANSION_DUCKDB_MAX_TEMP_DIRECTORY_SIZE": session["max_temp_directory_size"],
        }

    def masked(self) -> dict[str, Any]:
        """Effective settings for display (no setting holds a secret: configuration only names
        them, see flows/secrets.py), with the derived paths."""
        out = self.model_dump(mode="json")
        out.update(
            warehouse=str(self.warehouse),
            serving_db=str(self.serving_db),
            registry=str(self.registry),
            sync=str(self.sync),
        )
        return out

    def non_default(self) -> dict[str, str]:
        """`EXPANSION_<NAME>` -> value of every setting that differs from its default (a
        default derived from the machine or from another setting counts as a default), as
        text, masked like a log line (flows/masking.py): what a benchmark or a bug report
        must say was in effect."""
        from flows.masking import MASK, mask_text

        values = dict(self)
        out: dict[str, str] = {}
        for name, info in type(self).model_fields.items():
            value = values[name]
            default = info.get_default(call_default_factory=True, validated_data=values)
            if _same(value, default):
                continue
            if isinstance(value, SecretStr):
                text = MASK
            elif isinstance(value, Path | date):
                text = str(value)
            else:
                text = json.dumps(value) if isinstance(value, bool | None) else str(value)
            out[f"EXPANSION_{name.upper()}"] = mask_text(text, None)
        return out


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, Path) and isinstance(default, Path):
        return value.expanduser().resolve() == default.expanduser().resolve()
    return bool(value == default)


def get_settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
