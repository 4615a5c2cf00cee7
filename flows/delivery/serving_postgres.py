"""PostgreSQL serving: the tables of the serving DuckDB file, in a PostgreSQL schema, for the
BI tools that cannot open a DuckDB file (Power BI, Tableau, Looker, Metabase's PostgreSQL
driver).

Configured by two settings: `serving_dsn_env` names the environment variable (or secret file,
`flows/secrets.py`) holding the DSN, never the DSN itself; `serving_schema` (default
`expansion`) is the schema BI reads. `serving_readers` lists roles granted `USAGE` on the schema
and `SELECT` on its tables at every publish (grants found on the schema in place are carried
over too, so a DBA's own `GRANT` survives the swap).

Every table is copied from the finished serving DuckDB file (the same rows and columns BI
reads there) with psycopg's COPY, each DuckDB type mapped to its PostgreSQL type (`pg_type`:
dates stay `date`, decimals `numeric(p,s)`, timestamps `timestamp`).

A full publish builds the schema `<schema>__new` (committed, invisible to BI under that name),
then switches it in ONE transaction: lock the tables of `<schema>`, rename `<schema>` to
`<schema>__old`, rename `<schema>__new` to `<schema>`, drop `<schema>__old`. Readers see the old
version or the new one, never half and never an error:

- a statement resolves the schema by name when it starts: before the commit, the old tables;
  after, the new ones. A statement waiting for a table the switch has locked is re-resolved by
  PostgreSQL once the lock is released, and reads the new table;
- the switch takes ACCESS EXCLUSIVE locks on the old tables before renaming, so it waits for
  every reader transaction that has read one of them to end: a reader running several
  statements in one transaction sees one version in all of them;
- the switch waits at most `LOCK_TIMEOUT_MS` (`SET LOCAL lock_timeout`) and tries
  `SWITCH_ATTEMPTS` times. The publisher always gives way: it waits on a reader before any reader
  can wait on it, so if a deadlock arises it is the publisher's deadlock check that fires
  first and the publisher's transaction that is rolled back, never a reader's. When readers hold
  locks past every attempt (a BI extract in one long transaction), the publish fails with
  `ServingPostgresError` naming the schema; the previous version stays, complete.

A history-only publish (a past date, a backfill) replaces the rows of `account_score_history`
(and `_publication`) in place in one transaction, like the DuckDB side copies the warehouse's
history: row locks only, readers are never blocked and see the old history or the new one. If
the schema in place is not the version the DuckDB file holds (nothing published to PostgreSQL
yet, or an interrupted publish left them apart) the whole schema is built and swapped instead.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from flows.errors import EXIT_FAILED
from flows.masking import mask_text
from flows.warehouse import Warehouse

if TYPE_CHECKING:
    from flows.settings import Settings

log = logging.getLogger(__name__)

LOCK_TIMEOUT_MS = 5000  # how long one switch attempt waits for readers' locks
SWITCH_ATTEMPTS = 3
COPY_BATCH_ROWS = 10_000
HISTORY_TABLE = "account_score_history"
PUBLICATION_TABLE = "_publication"


class ServingPostgresError(RuntimeError):
    """The PostgreSQL serving schema could not be written or switched: the previous version
    stays in PostgreSQL and the DuckDB serving file was not swapped either."""

    exit_code = EXIT_FAILED


@dataclass(frozen=True)
class PostgresServing:
    dsn: str = field(repr=False)
    schema: str = "expansion"
    readers: tuple[str, ...] = ()


def from_settings(settings: Settings) -> PostgresServing | None:
    """The PostgreSQL serving target the settings name, or None when `serving_dsn_env` is unset.
    A named secret that holds nothing is an error: BI would silently go stale."""
    if not settings.serving_dsn_env:
        return None
    from flows.secrets import read_secret

    dsn = read_secret(settings.serving_dsn_env)
    if not dsn:
        raise ServingPostgresError(
            f"serving_dsn_env names {settings.serving_dsn_env}, but neither that environment "
            "variable nor a secret file of that name holds a DSN: set it, or unset "
            "EXPANSION_SERVING_DSN_ENV to publish the DuckDB file only"
        )
    return PostgresServing(dsn, settings.serving_schema, settings.serving_reader_roles)


# --- types ----------------------------------------------------------------------------------
_SIMPLE_TYPES = {
    "BOOLEAN": "boolean",
    "TINYINT": "smallint",
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "HUGEINT": "numeric(38,0)",
    "UTINYINT": "smallint",
    "USMALLINT": "integer",
    "UINTEGER": "bigint",
    "UBIGINT": "numeric(20,0)",
    "UHUGEINT": "numeric(39,0)",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "VARCHAR": "text",
    "DATE": "date",
    "TIME": "time",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP_S": "timestamp",
    "TIMESTAMP_MS": "timestamp",
    "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "INTERVAL": "interval",
    "UUID": "uuid",
    "BLOB": "bytea",
    "JSON": "jsonb",
}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")


def pg_type(duckdb_type: str) -> str | None:
    """The PostgreSQL type for a DuckDB column type (None: no faithful one, e.g. a STRUCT)."""
    t = duckdb_type.strip().upper()
    if t.endswith("[]"):
        inner = pg_type(t[:-2])
        return f"{inner}[]" if inner and not inner.endswith("[]") else None
    if m := _DECIMAL.match(t):
        return f"numeric({m.group(1)},{m.group(2)})"
    return _SIMPLE_TYPES.get(t)


def _base(pg: str) -> str:
    """The type name psycopg's `set_types` wants: no modifiers."""
    return re.sub(r"\(.*\)", "", pg)


# --- the publish ----------------------------------------------------------------------------
def published_run_id(target: PostgresServing) -> str | None:
    """The run_id of the version in `<schema>._publication` (None: nothing published there)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(target.dsn, connect_timeout=10, autocommit=True) as pg:
        if not _schema_has(pg, target.schema, PUBLICATION_TABLE):
            return None
        row = pg.execute(
            sql.SQL("select run_id from {}").format(
                sql.Identifier(target.schema, PUBLICATION_TABLE)
            )
        ).fetchone()
    return str(row[0]) if row and row[0] is not None else None


def _schema_has(pg: Any, schema: str, table: str) -> bool:
    row = pg.execute(
        "select 1 from information_schema.tables where table_schema = %s and table_name = %s",
        [schema, table],
    ).fetchone()
    return row is not None


def _columns(duck: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    return [
        (str(name), str(typ))
        for name, typ in duck.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_catalog = current_database() and table_schema = 'main' "
            "and table_name = ? order by ordinal_position",
            [table],
        ).fetchall()
    ]


def _tables(duck: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        str(r[0])
        for r in duck.execute(
            "select table_name from information_schema.tables where table_catalog = "
            "current_database() and table_schema = 'main' order by table_name"
        ).fetchall()
    ]


def _copy_table(
    pg: Any, duck: duckdb.DuckDBPyConnection, schema: str, table: str, *, create: bool
) -> int:
    """Create `schema.table` (when `create`) with the DuckDB table's columns and COPY its rows."""
    from psycopg import sql

    columns = _columns(duck, table)
    types: list[str] = []
    for name, typ in columns:
        mapped = pg_type(typ)
        if mapped is None:
            raise ServingPostgresError(
                f"column {table}.{name} has the DuckDB type {typ}, which has no PostgreSQL "
                "type in flows/delivery/serving_postgres.py pg_type"
            )
        types.append(mapped)
    ident = sql.Identifier(schema, table)
    if create:
        pg.execute(
            sql.SQL("create table {} ({})").format(
                ident,
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t))
                    for (n, _), t in zip(columns, types, strict=True)
                ),
            )
        )
    names = sql.SQL(", ").join(sql.Identifier(n) for n, _ in columns)
    result = duck.execute(f'select * from main."{table}"')  # name from the file's own catalog
    rows = 0
    statement = sql.SQL("copy {} ({}) from stdin").format(ident, names)
    with pg.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types([_base(t) for t in types])
        while batch := result.fetchmany(COPY_BATCH_ROWS):
            for row in batch:
                copy.write_row(row)
            rows += len(batch)
    return rows


def _grantees(pg: Any, schema: str) -> set[str]:
    """Roles holding USAGE on `schema` now (other than its owner): kept across the swap."""
    rows = pg.execute(
        "select r.rolname from pg_namespace n, aclexplode(n.nspacl) a "
        "join pg_roles r on r.oid = a.grantee "
        "where n.nspname = %s and a.privilege_type = 'USAGE' and a.grantee <> n.nspowner",
        [schema],
    ).fetchall()
    return {str(r[0]) for r in rows}


def _grant(pg: Any, schema: str, roles: Iterable[str]) -> None:
    from psycopg import sql

    for role in sorted(set(roles)):
        pg.execute(
            sql.SQL("grant usage on schema {} to {}").format(
                sql.Identifier(schema), sql.Identifier(role)
            )
        )
        pg.execute(
            sql.SQL("grant select on all tables in schema {} to {}").format(
                sql.Identifier(schema), sql.Identifier(role)
            )
        )


def _dependent_views(pg: Any, schema: str) -> list[str]:
    """Views (and materialized views) that read a table of `schema`: the swap would drop them
    with the old tables (a view binds to a table, not to its name)."""
    rows = pg.execute(
        "select distinct format('%%I.%%I', vn.nspname, v.relname) "
        "from pg_depend d join pg_rewrite r on r.oid = d.objid "
        "join pg_class v on v.oid = r.ev_class join pg_namespace vn on vn.oid = v.relnamespace "
        "join pg_class t on t.oid = d.refobjid join pg_namespace tn on tn.oid = t.relnamespace "
        "where d.classid = 'pg_rewrite'::regclass and d.refclassid = 'pg_class'::regclass "
        "and tn.nspname = %s and v.oid <> t.oid order by 1",
        [schema],
    ).fetchall()
    return [str(r[0]) for r in rows]


def _fail(what: str, exc: BaseException) -> ServingPostgresError:
    return ServingPostgresError(mask_text(f"{what}: {type(exc).__name__}: {exc}", None))


def prepare(target: PostgresServing, serving_file: Path, *, history_only: bool) -> _Prepared:
    """Build the new version in PostgreSQL from the finished serving DuckDB file, not yet
    visible to BI; `switch` makes it current. Raises ServingPostgresError (the version in
    place untouched, the half-built schema dropped)."""
    import psycopg
    from psycopg import sql

    schema, new = target.schema, f"{target.schema}__new"
    try:
        pg = psycopg.connect(target.dsn, connect_timeout=10)
    except psycopg.Error as exc:
        raise _fail(f"PostgreSQL serving (schema {schema}): cannot connect", exc) from None
    duck = Warehouse(serving_file).open(read_only=True)  # the machine's DuckDB session
    table = "-"
    try:
        tables = _tables(duck)
        in_place = _can_append_history(pg, duck, schema) if history_only else False
        pg.rollback()
        if in_place:
            return _Prepared(target, pg, mode="history", tables=tables, duck=duck)
        views = _dependent_views(pg, schema)
        pg.rollback()
        if views:
            raise ServingPostgresError(
                f"PostgreSQL serving: the views {', '.join(views)} read tables of schema "
                f"{schema}; the swap would drop them with the old tables, so nothing was "
                "published (the previous version stays). Define them in your BI tool, or "
                "drop them (docs/bi.md)"
            )
        with pg.transaction():
            pg.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(new)))
            pg.execute(sql.SQL("create schema {}").format(sql.Identifier(new)))
            for table in tables:
                _copy_table(pg, duck, new, table, create=True)
            table = "-"
            _grant(pg, new, {*target.readers, *_grantees(pg, schema)})
        duck.close()
        return _Prepared(target, pg, mode="swap", tables=tables)
    except BaseException as exc:
        duck.close()
        pg.close()
        if isinstance(exc, ServingPostgresError):
            raise
        where = f"table {new}.{table}" if table != "-" else f"schema {new}"
        raise _fail(f"PostgreSQL serving: building {where} failed", exc) from None


def _can_append_history(pg: Any, duck: duckdb.DuckDBPyConnection, schema: str) -> bool:
    """Whether PostgreSQL holds the version the DuckDB file keeps (same `_publication.run_id`)
    and a history table of the same columns: then only the history is replaced in place."""
    from psycopg import sql

    if not _schema_has(pg, schema, PUBLICATION_TABLE) or not _schema_has(pg, schema, HISTORY_TABLE):
        return False
    if HISTORY_TABLE not in _tables(duck):
        return False
    row = pg.execute(
        sql.SQL("select run_id from {}").format(sql.Identifier(schema, PUBLICATION_TABLE))
    ).fetchone()
    here = duck.execute("select run_id from main._publication").fetchone()
    if not row or not here or row[0] != here[0]:
        log.warning(
            "PostgreSQL serving schema %s holds run %s, the serving DuckDB file run %s: the "
            "whole schema is published again, not only the history",
            schema,
            row[0] if row else None,
            here[0] if here else None,
        )
        return False
    pg_cols = [
        r[0]
        for r in pg.execute(
            "select column_name from information_schema.columns where table_schema = %s "
            "and table_name = %s order by ordinal_position",
            [schema, HISTORY_TABLE],
        ).fetchall()
    ]
    return pg_cols == [n for n, _ in _columns(duck, HISTORY_TABLE)]


@dataclass
class _Prepared:
    target: PostgresServing
    pg: Any
    mode: str  # "swap": <schema>__new is built; "history": replace the history in place
    tables: list[str]
    duck: duckdb.DuckDBPyConnection | None = None

    def switch(self) -> str:
        """Make the new version current in one transaction; returns what was done, in words."""
        try:
            if self.mode == "history":
                return self._history()
            return self._swap()
        finally:
            self.close()

    def close(self) -> None:
        """Give up (or finish): drop a built, unswitched schema, close the connections."""
        from psycopg import sql

        if self.duck is not None:
            self.duck.close()
            self.duck = None
        if self.pg.closed:
            return
        try:
            self.pg.rollback()
            with self.pg.transaction():
                self.pg.execute(
                    sql.SQL("drop schema if exists {} cascade").format(
                        sql.Identifier(f"{self.target.schema}__new")
                    )
                )
        except Exception as exc:  # the next publish drops it first
            log.warning("could not drop %s__new: %s", self.target.schema, mask_text(str(exc)))
        finally:
            self.pg.close()

    def _swap(self) -> str:
        import psycopg
        from psycopg import sql

        schema = self.target.schema
        old, new = f"{schema}__old", f"{schema}__new"
        for attempt in range(1, SWITCH_ATTEMPTS + 1):
            try:
                with self.pg.transaction():
                    self.pg.execute(
                        sql.SQL("set local lock_timeout = {}").format(
                            sql.Literal(f"{LOCK_TIMEOUT_MS}ms")
                        )
                    )
                    in_place = [
                        str(r[0])
                        for r in self.pg.execute(
                            "select tablename from pg_tables where schemaname = %s "
                            "order by tablename",
                            [schema],
                        ).fetchall()
                    ]
                    if in_place:  # wait for readers of the old version, before any rename
                        self.pg.execute(
                            sql.SQL("lock table {} in access exclusive mode").format(
                                sql.SQL(", ").join(sql.Identifier(schema, t) for t in in_place)
                            )
                        )
                    self.pg.execute(
                        sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(old))
                    )
                    exists = self.pg.execute(
                        "select 1 from pg_namespace where nspname = %s", [schema]
                    ).fetchone()
                    if exists:
                        self.pg.execute(
                            sql.SQL("alter schema {} rename to {}").format(
                                sql.Identifier(schema), sql.Identifier(old)
                            )
                        )
                    self.pg.execute(
                        sql.SQL("alter schema {} rename to {}").format(
                            sql.Identifier(new), sql.Identifier(schema)
                        )
                    )
                    if exists:
                        self.pg.execute(
                            sql.SQL("drop schema {} cascade").format(sql.Identifier(old))
                        )
                return f"schema {schema} switched to the new version ({len(self.tables)} tables)"
            except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as exc:
                if attempt == SWITCH_ATTEMPTS:
                    raise _fail(
                        f"PostgreSQL serving: could not switch schema {schema} to the new "
                        f"version: readers held locks on its tables through {SWITCH_ATTEMPTS} "
                        f"attempts of {LOCK_TIMEOUT_MS} ms (lock_timeout); the previous version "
                        "stays",
                        exc,
                    ) from None
                log.warning(
                    "switching schema %s waited for readers' locks (attempt %s of %s): %s",
                    schema,
                    attempt,
                    SWITCH_ATTEMPTS,
                    mask_text(str(exc)),
                )
                time.sleep(0.2 * attempt)
            except psycopg.Error as exc:
                raise _fail(
                    f"PostgreSQL serving: switching schema {new} to {schema} failed; the "
                    "previous version stays",
                    exc,
                ) from None
        raise AssertionError("unreachable")

    def _history(self) -> str:
        import psycopg
        from psycopg import sql

        schema = self.target.schema
        assert self.duck is not None
        table = HISTORY_TABLE
        try:
            with self.pg.transaction():
                for table in (HISTORY_TABLE, PUBLICATION_TABLE):
                    self.pg.execute(sql.SQL("delete from {}").format(sql.Identifier(schema, table)))
                    _copy_table(self.pg, self.duck, schema, table, create=False)
        except (psycopg.Error, ServingPostgresError) as exc:
            raise _fail(
                f"PostgreSQL serving: replacing the rows of {schema}.{table} failed; the "
                "previous version stays",
                exc,
            ) from None
        return f"history replaced in place in {schema}.{HISTORY_TABLE}"
