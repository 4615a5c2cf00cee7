"""config/sources.yml: which connector serves each source, and the bad-row policy.

`{landing_dir}` in a value is EXPANSION_LANDING_DIR. It is substituted in the parsed values,
never in the YAML text: a path holding `"`, `#`, `: ` or a line break is a value like any
other, and cannot change the configuration's structure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.ingest.connectors import Connector
from flows.ingest.contract import SOURCES, TABLES_BY_KEY, Table

Policy = Literal["fail", "quarantine"]


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["files", "postgres"]
    url: str | None = None  # files
    storage_options: dict[str, Any] = Field(default_factory=dict)  # files: fsspec options
    # files: the folder every file must resolve inside (links out of it are refused); set to
    # the landing dir for a url under `{landing_dir}`; unset: the url itself
    landing_zone: str | None = None


class BadRows(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: Policy = "fail"
    tables: dict[str, Policy] = Field(default_factory=dict)

    @field_validator("tables")
    @classmethod
    def _known(cls, value: dict[str, Policy]) -> dict[str, Policy]:
        unknown = sorted(set(value) - set(TABLES_BY_KEY))
        if unknown:
            raise ValueError(f"bad_rows.tables names unknown tables {unknown}")
        return value

    def policy(self, table: Table) -> Policy:
        return self.tables.get(f"{table.source}.{table.name}", self.default)


class SourcesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: dict[str, SourceSpec]
    bad_rows: BadRows = Field(default_factory=BadRows)

    @field_validator("sources")
    @classmethod
    def _all_sources(cls, value: dict[str, SourceSpec]) -> dict[str, SourceSpec]:
        missing = sorted(set(SOURCES) - set(value))
        unknown = sorted(set(value) - set(SOURCES))
        if missing or unknown:
            raise ValueError(
                f"sources must be exactly {list(SOURCES)}; missing {missing}, unknown {unknown}"
            )
        return value


def files_config(landing_dir: Path) -> SourcesConfig:
    """Every source as files under one landing directory (the default layout)."""
    return SourcesConfig(
        sources={
            s: SourceSpec(type="files", url=str(landing_dir / s), landing_zone=str(landing_dir))
            for s in SOURCES
        }
    )


LANDING_DIR = "{landing_dir}"


def _substitute(value: Any, landing_dir: str) -> Any:
    """`value` with `{landing_dir}` replaced in every string it holds (keys stay as written);
    a source whose url lies under it gets the landing dir as its `landing_zone`."""
    if isinstance(value, str):
        return value.replace(LANDING_DIR, landing_dir)
    if isinstance(value, dict):
        url = value.get("url")
        if isinstance(url, str) and LANDING_DIR in url and "landing_zone" not in value:
            value = {**value, "landing_zone": landing_dir}
        return {k: _substitute(v, landing_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, landing_dir) for v in value]
    return value


def load_sources_config(path: Path, landing_dir: Path) -> SourcesConfig:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"sources config {path} does not exist") from None
    used = f" ({LANDING_DIR} = {str(landing_dir)!r})" if LANDING_DIR in text else ""
    try:
        parsed = _substitute(yaml.safe_load(text) or {}, str(landing_dir))
        return SourcesConfig.model_validate(parsed)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}{used}: {exc}") from exc


def build_connector(name: str, spec: SourceSpec, staging_dir: Path, run_id: str) -> Connector:
    if spec.type == "files":
        from flows.ingest.connectors.files import FilesConnector

        if not spec.url:
            raise ValueError(f"source {name}: type files needs a url")
        return FilesConnector(spec.url, spec.storage_options, landing_zone=spec.landing_zone)
    from flows.ingest.connectors.postgres import connector_from_config

    return connector_from_config(
        name, spec.model_dump(exclude={"landing_zone"}), staging_dir, run_id
    )
