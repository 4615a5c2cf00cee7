"""PostgreSQL source: billing (or CRM) tables read from an operational database.

Configured in `config/sources.yml`:

    billing:
      type: postgres
      dsn_env: BILLING_PG_DSN          # the NAME of the env var holding the DSN
      tables:
        subscriptions: {table: billing.subscriptions, watermark: updated_at}
        customers: {query: "select ... from billing.customers c join ...", watermark: updated_at}
        products: {table: billing.products}   # no watermark: a full snapshot every run

Each run copies what is new of a table (`COPY (...) TO STDOUT WITH (FORMAT csv, HEADER true)`)
into `<staging_dir>/<source>/<table>/<run_id>.csv` and returns it as one `Extract`. With a
watermark column only rows whose watermark is greater than the last one loaded are copied;
without one the whole table is copied and the fingerprint dedupes identical snapshots (rows are
ordered by the contract's primary key so that an unchanged table gives identical bytes).

The session runs read-only, in one REPEATABLE READ snapshot (the copy and the watermark it
reaches see the same rows), with `TIME ZONE 'UTC'` and ISO dates. The DSN is never logged nor
put into an error message: extracts and errors name `postgresql://host:port/dbname/...`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from flows.errors import TransientSourceError
from flows.ingest.connectors import Extract, Ledger
from flows.ingest.contract import TABLES, Table

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10  # an unreachable host fails fast and is retried by the task
LOCK_TIMEOUT = "30s"  # a table locked by a migration: give up and retry later

_IDENT = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
_IDENT_RE = re.compile(rf"^{_IDENT}$")
_TABLE_RE = re.compile(rf"^({_IDENT})\.({_IDENT})$")
_QUERY_START_RE = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_FILES_ONLY = ("url", "storage_options")


class PostgresTableSpec(BaseModel):
    """Where one contract table comes from: a `table` or a `query`, and an optional watermark."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str | None = None  # "schema.table", quoted as identifiers, never pasted
    query: str | None = None  # a SELECT written in the config, wrapped as a subquery
    watermark: str | None = None  # a column that grows with every change (e.g. updated_at)

    @field_validator("table")
    @classmethod
    def _check_table(cls, value: str | None) -> str | None:
        if value is not None and not _TABLE_RE.match(value):
            raise ValueError(
                f"table {value!r} must be 'schema.table' with letters, digits and underscores "
                "(for anything else write a query:)"
            )
        return value

    @field_validator("watermark")
    @classmethod
    def _check_watermark(cls, value: str | None) -> str | None:
        if value is not None and not _IDENT_RE.match(value):
            raise ValueError(
                f"watermark {value!r} must be one column name of letters, digits and underscores"
            )
        return value

    @field_validator("query")
    @classmethod
    def _check_query(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip(";").rstrip()
        if not _QUERY_START_RE.match(value):
            raise ValueError("query must be a single SELECT (or WITH ... SELECT) statement")
        return value

    @model_validator(mode="after")
    def _table_or_query(self) -> PostgresTableSpec:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table: or query:")
        return self


class PostgresSourceSpec(BaseModel):
    """A `type: postgres` entry of config/sources.yml."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["postgres"] = "postgres"
    dsn_env: str
    tables: dict[str, PostgresTableSpec]


class PostgresConnector:
    """Extracts of the contract tables of one source that live in a PostgreSQL database."""

    def __init__(
        self,
        dsn: str,
        tables: Mapping[str, PostgresTableSpec],
        staging_dir: Path,
        run_id: str,
        source: str,
    ) -> None:
        known = {t.name for t in TABLES if t.source == source}
        if not known:
            raise ValueError(f"source {source!r} has no tables in the extract contract")
        unknown = sorted(set(tables) - known)
        if unknown:
            raise ValueError(
                f"source {source!r}: tables {unknown} are not in the extract contract; "
                f"known {source} tables: {sorted(known)}"
            )
        if not _RUN_ID_RE.match(run_id):
            raise ValueError(f"run_id {run_id!r} must be a plain file name")
        self._dsn = dsn
        self._password = _conninfo(dsn, source).get("password") or ""
        self.tables = dict(tables)
        self.staging_dir = Path(staging_dir)
        self.run_id = run_id
        self.source = source
        self.base_origin = _base_origin(dsn, source)

    def __repr__(self) -> str:  # never show the DSN
        return f"PostgresConnector(source={self.source!r}, origin={self.base_origin!r})"

    def origin(self, table: Table) -> str:
        spec = self.tables[table.name]
        what = spec.table if spec.table is not None else f"query:{table.name}"
        return f"{self.base_origin}/{what}"

    def extracts(self, table: Table, ledger: Ledger) -> list[Extract]:
        """Copy the rows of `table` that are new since the ledger's last watermark."""
        spec = self.tables.get(table.name) if table.source == self.source else None
        if spec is None:
            return []
        last = ledger.last_watermark(table) if spec.watermark else None
        select = _select(spec, table, last)
        origin = self.origin(table)
        target = self.staging_dir / self.source / table.name / f"{self.run_id}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        try:
            rows, fingerprint, watermark = self._copy(select, spec, partial, table)
        except psycopg.OperationalError as exc:
            partial.unlink(missing_ok=True)
            raise TransientSourceError(f"{origin}: {self._scrub(str(exc))}") from None
        except psycopg.Error as exc:
            partial.unlink(missing_ok=True)
            entry = f"table: {spec.table}" if spec.table else f"query: {spec.query}"
            if spec.watermark:
                entry += f", watermark: {spec.watermark}"
            hint = ""
            if isinstance(exc, psycopg.errors.UndefinedColumn):
                hint = (
                    f"\nthe rows must have the contract's columns "
                    f"{', '.join(c.name for c in table.columns)}"
                )
            raise ValueError(
                f"source {self.source!r}, table {table.source}.{table.name}: the config entry "
                f"{{{entry}}} failed in {origin}: {self._scrub(str(exc)).strip()}{hint}"
            ) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if rows == 0 or ledger.seen(fingerprint):
            partial.unlink()
            log.info("%s: nothing new (%d rows copied)", origin, rows)
            return []
        partial.replace(target)
        log.info("%s: %d rows to %s (watermark %s)", origin, rows, target, watermark)
        return [
            Extract(
                table=table,
                uri=str(target),
                origin=origin,
                fingerprint=fingerprint,
                file_format="csv",
                watermark=watermark,
            )
        ]

    def _copy(
        self, select: sql.Composable, spec: PostgresTableSpec, path: Path, table: Table
    ) -> tuple[int, str, str | None]:
        """Stream `select` as CSV into `path`: (rows, sha256, highest watermark or None).

        Raises ValueError when a contract column comes as a nested type (json, jsonb, an array,
        a composite): COPY would write it as JSON or array text that no scalar column holds
        (a jsonb string would arrive with its quotes)."""
        digest = hashlib.sha256()
        with psycopg.connect(
            self._dsn, connect_timeout=CONNECT_TIMEOUT_S, application_name="expansion-pipeline"
        ) as conn:
            conn.read_only = True
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
                cur.execute("SET DateStyle = 'ISO, YMD'")
                cur.execute("SET client_encoding = 'UTF8'")
                cur.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
                self._check_types(cur, select, spec, table)
                copy_stmt = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)")
                with path.open("wb") as out, cur.copy(copy_stmt.format(select)) as copy:
                    for chunk in copy:
                        out.write(chunk)
                        digest.update(chunk)
                rows = cur.rowcount
                watermark = None
                if spec.watermark and rows > 0:
                    cur.execute(
                        sql.SQL("select max(src.{}) from ({}) as src").format(
                            sql.Identifier(spec.watermark), select
                        )
                    )
                    found = cur.fetchone()
                    watermark = _iso(found[0]) if found else None
        return rows, digest.hexdigest(), watermark

    def _check_types(
        self,
        cur: psycopg.Cursor[Any],
        select: sql.Composable,
        spec: PostgresTableSpec,
        table: Table,
    ) -> None:
        """Refuse a contract column whose PostgreSQL type is nested (json, jsonb, an array, a
        composite): name the table, column and type, and how to make it a scalar."""
        cur.execute(sql.SQL("select * from ({}) as src limit 0").format(select))
        types = {d.name: d.type_code for d in cur.description or []}
        wanted = {c.name for c in table.columns}
        oids = sorted({oid for name, oid in types.items() if name in wanted})
        if not oids:
            return
        cur.execute(
            "select oid::int, format_type(oid, null), typcategory from pg_type where oid = any(%s)",
            [oids],
        )
        nested = {
            oid: name
            for oid, name, category in cur.fetchall()
            if category in ("A", "C") or name in ("json", "jsonb")
        }
        bad = [f"{n} ({nested[o]})" for n, o in types.items() if n in wanted and o in nested]
        if bad:
            what = f"table: {spec.table}" if spec.table else f"query: {spec.query}"
            raise ValueError(
                f"source {self.source!r}, table {table.source}.{table.name} ({what}): column(s) "
                f"{', '.join(bad)} hold nested values, but the contract's columns hold single "
                "values: select a scalar in a query (e.g. payload->>'industry' as industry)"
            )

    def _scrub(self, text: str) -> str:
        for secret in {self._dsn, self._password} - {""}:
            text = text.replace(secret, "***")
        return text


def _select(spec: PostgresTableSpec, table: Table, last: str | None) -> sql.Composable:
    """The SELECT to copy: the table or query, rows past the watermark, in a stable order."""
    if spec.table is not None:
        schema, name = spec.table.split(".")
        inner: sql.Composable = sql.SQL("select * from {}").format(sql.Identifier(schema, name))
    else:
        assert spec.query is not None
        # own lines, so that a trailing "-- comment" in the query cannot swallow the ")"
        inner = sql.SQL("\n" + spec.query + "\n")
    select = sql.SQL("select * from ({}) as src").format(inner)
    if spec.watermark and last is not None:
        # bound client-side as psycopg does for every COPY parameter; a Literal rather than %s
        # so that a "%" inside a config query is not taken for a placeholder
        select = sql.SQL("{} where src.{} > {}").format(
            select, sql.Identifier(spec.watermark), sql.Literal(last)
        )
    order = [sql.SQL("src.{}").format(sql.Identifier(c)) for c in table.primary_key]
    if spec.watermark:
        order.append(sql.SQL("src.{}").format(sql.Identifier(spec.watermark)))
    return sql.SQL("{} order by {}").format(select, sql.SQL(", ").join(order))


def _iso(value: Any) -> str | None:
    """A watermark as text that PostgreSQL reads back as the same value (UTC for timestamptz)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _conninfo(dsn: str, source: str) -> dict[str, Any]:
    try:
        return psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        # the parser's message quotes the DSN, password included
        raise ValueError(
            f"source {source!r}: the DSN is not a valid PostgreSQL connection string "
            "(postgresql://user:password@host:port/dbname or key=value pairs)"
        ) from None


def _base_origin(dsn: str, source: str) -> str:
    """postgresql://host:port/dbname of a DSN, without user or password."""
    info = _conninfo(dsn, source)
    host = info.get("host") or info.get("hostaddr") or "localhost"
    port = info.get("port") or "5432"
    dbname = info.get("dbname") or info.get("user") or ""
    return f"postgresql://{host}:{port}/{dbname}"


def connector_from_config(
    source_name: str, spec: Mapping[str, Any], staging_dir: Path, run_id: str
) -> PostgresConnector:
    """A connector for a `type: postgres` source of config/sources.yml."""
    # the generic source entry (flows/ingest/sources.py) carries the files-only keys, unset
    entry = {k: v for k, v in spec.items() if not (k in _FILES_ONLY and not v)}
    try:
        parsed = PostgresSourceSpec.model_validate(entry)
    except ValidationError as exc:
        raise ValueError(f"config/sources.yml, source {source_name!r}: {exc}") from None
    dsn = os.environ.get(parsed.dsn_env, "")
    if not dsn.strip():
        raise ValueError(
            f"config/sources.yml, source {source_name!r}: environment variable "
            f"{parsed.dsn_env} (dsn_env) is not set; it must hold the PostgreSQL DSN"
        )
    return PostgresConnector(dsn, parsed.tables, Path(staging_dir), run_id, source_name)
