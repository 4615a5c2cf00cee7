"""config/syncs.yml: each reverse-ETL sync's serving table, key, mode, field mapping and
destination, validated (identifiers, environment variable names, paths under the sync dir)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


SUBDIRECTORY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")


def _ident(value: str, what: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(f"{what} {value!r} is not a valid identifier (letters, digits, _)")
    return value


def _env_name(value: str, what: str) -> str:
    """Secrets come from environment variables; configuration only names them."""
    if not ENV_NAME.match(value):
        raise ValueError(f"{what} {value!r} is not an environment variable name")
    return value


class CsvDestination(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["csv"]
    path: str = "."  # under the sync directory

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if value != "." and (not SUBDIRECTORY.match(value) or ".." in value.split("/")):
            raise ValueError(
                f"csv destination path {value!r} must be a folder under the sync directory "
                "(letters, digits, _ . -; no absolute paths, no '..')"
            )
        return value


class PostgresDestination(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["postgres"]
    dsn_env: str  # name of the environment variable holding the connection string
    table: str  # schema.table, created if missing
    # records applied per statement; a batch failing on a data error (a CHECK, NOT NULL or
    # type error) is applied again one record at a time so only the bad records are rejected
    batch_size: int = Field(1000, ge=1, le=100_000)

    @field_validator("dsn_env")
    @classmethod
    def _dsn_env(cls, value: str) -> str:
        return _env_name(value, "postgres destination dsn_env")

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 2:
            raise ValueError(f"postgres destination table {value!r} must be schema.table")
        for p in parts:
            _ident(p, "postgres destination table part")
        return value


class HttpDestination(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["http"]
    url: str
    batch_size: int = Field(500, ge=1, le=10000)
    max_attempts: int = Field(5, ge=1, le=20)
    backoff_seconds: float = Field(1.0, ge=0)
    # a 429 or 503 with Retry-After is retried after the time it names; a longer wait than
    # this fails the batch and the batches after it are not sent (resent next run)
    max_retry_after_seconds: float = Field(60.0, ge=0)
    timeout_seconds: float = Field(30.0, gt=0)
    headers_env: dict[str, str] = Field(default_factory=dict)  # header: env var holding it
    # `expansion sync --dry-run` GETs this URL with the headers (a health or "who am I"
    # endpoint: checks the token too) and wants a 2xx; without it, it only opens a TCP (and
    # TLS) connection to the host of `url` and sends no request
    check_url: str | None = None

    @field_validator("headers_env")
    @classmethod
    def _headers_env(cls, value: dict[str, str]) -> dict[str, str]:
        for header, env in value.items():
            if not re.match(r"^[A-Za-z0-9-]{1,64}$", header):
                raise ValueError(f"http destination header {header!r} is not a header name")
            _env_name(env, f"http destination header {header} env")
        return value

    @field_validator("url", "check_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s]+$", value):
            raise ValueError(f"http destination url {value!r} must be an http(s) URL")
        return value


Destination = Annotated[
    CsvDestination | PostgresDestination | HttpDestination, Field(discriminator="type")
]


class SyncSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    source: str
    key: str
    mode: Literal["upsert", "update_only", "mirror"] = "upsert"
    destination: Destination
    fields: dict[str, str] = Field(min_length=1)
    # destination fields whose values `expansion sync --dry-run` shows as *** in its sample
    masked_fields: list[str] = Field(default_factory=list)

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

    @model_validator(mode="after")
    def _masked(self) -> SyncSpec:
        unknown = [f for f in self.masked_fields if f not in self.fields]
        if unknown:
            raise ValueError(
                f"sync {self.name}: masked_fields {unknown} are not destination fields "
                f"({', '.join(self.fields)})"
            )
        return self

    @property
    def key_field(self) -> str:
        """The destination field the key maps to."""
        for dest, src in self.fields.items():
            if src == self.key:
                return dest
        raise ValueError(f"sync {self.name}: the key {self.key} must be one of the mapped fields")


def load_syncs(path: Path) -> list[SyncSpec]:
    try:
        doc: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"sync config {path} does not exist") from None
    try:
        specs = [SyncSpec.model_validate(s) for s in doc.get("syncs", [])]
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: sync names must be unique, got {names}")
    for s in specs:
        _ = s.key_field
    return specs
