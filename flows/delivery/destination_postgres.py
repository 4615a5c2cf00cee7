"""The PostgreSQL table destination.

All of a run's changes are applied in ONE transaction, so a crash or a lost connection leaves
the table with all of them or none, and the ledger (written after the commit) never claims
more than the table holds. Inside it:

1. every changed record is staged as text (`COPY` into a temporary table);
2. records are applied in batches of `batch_size`, each under a savepoint: an upsert
   (`INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE` the hash differs), an `UPDATE ... FROM`
   matched by key (`update_only`), a `DELETE` (mirror). Values are cast to the destination
   column's type, so a value that does not fit (a fraction into an integer column, a string
   too long) is an error, never a silent rounding or truncation;
3. a batch that fails on a DATA error (SQLSTATE class 22 data exception, 23 integrity: CHECK,
   NOT NULL, unique, foreign key; P0001 raised by a trigger) is rolled back to its savepoint
   and applied again one record at a time, each under its own savepoint: only the bad records
   are rejected, each with the database's SQLSTATE and message. Any other error (connection,
   permission, a missing column) aborts the whole transaction: nothing of the run lands.

The table is created when missing (key as primary key, the mapped fields, `_sync_hash` /
`_synced_at` / `_sync_run_id`). When it exists no DDL runs: a role that may SELECT, INSERT,
UPDATE and DELETE on that table (USAGE on its schema) is enough.
"""

from __future__ import annotations

import logging
import math
from datetime import date, datetime
from typing import Any

import pandas as pd

from flows.delivery.destination_base import Check, DestinationResult, DestinationUnavailable, mask
from flows.delivery.sync_config import PostgresDestination, SyncSpec

log = logging.getLogger(__name__)

BOOKKEEPING = ("_sync_hash", "_synced_at", "_sync_run_id")
_CREATE_TYPES = {"b": "boolean", "i": "bigint", "u": "bigint", "f": "double precision"}
# a source column of this pandas kind fits destination columns of these pg_type categories
# (N numeric, S string, B boolean, D date/time, U user-defined, E enum); "O" is text/objects
_FITS = {"b": "BS", "i": "NS", "u": "NS", "f": "NS", "M": "DS", "O": "SNBDUEATGIV"}
_INTEGER_TYPES = {"smallint", "integer", "bigint"}
# SQLSTATE classes / codes of errors that belong to a record, not to the connection or schema
_DATA_ERROR_CLASSES = ("22", "23")
_DATA_ERROR_CODES = ("P0001",)
# after this many batches in a row rejected record by record, every record, a failing batch is
# rejected whole: the table refuses everything, and that is not the records' fault
GIVE_UP_AFTER = 3


def _create_type(series: pd.Series) -> str:
    if series.dtype.kind in _CREATE_TYPES:
        return _CREATE_TYPES[series.dtype.kind]
    if series.dtype.kind == "M":
        return "timestamp"
    sample = series.dropna()
    if not sample.empty and isinstance(sample.iloc[0], date | datetime):
        return "timestamp" if isinstance(sample.iloc[0], datetime) else "date"
    return "text"


def _kind(series: pd.Series) -> str:
    kind = series.dtype.kind
    if kind == "O":
        sample = series.dropna()
        if not sample.empty and isinstance(sample.iloc[0], date | datetime):
            return "M"
    return kind if kind in _FITS else "O"


def _pg_text(value: Any) -> str | None:
    """A value as the text PostgreSQL casts to the destination column's type."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "item") and not isinstance(value, pd.Timestamp):  # numpy scalars
        return _pg_text(value.item())
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def is_data_error(exc: BaseException) -> bool:
    """An error because of one record's values: raised by PostgreSQL (SQLSTATE class 22 or 23,
    or P0001 from a trigger) or by psycopg before sending (a NUL byte in a text value)."""
    import psycopg

    code = getattr(exc, "sqlstate", None) or ""
    return (
        isinstance(exc, psycopg.DataError | psycopg.IntegrityError)
        or code[:2] in _DATA_ERROR_CLASSES
        or code in _DATA_ERROR_CODES
    )


def reason(exc: BaseException) -> str:
    """The database's reason for rejecting a record: SQLSTATE, condition, message, column or
    constraint. Masked; the statement and the row's values are left out."""
    diag = getattr(exc, "diag", None)
    primary = (diag.message_primary if diag else None) or str(exc)
    where = []
    if diag is not None and diag.column_name:
        where.append(f"column {diag.column_name}")
    if diag is not None and diag.constraint_name:
        where.append(f"constraint {diag.constraint_name}")
    suffix = f" ({', '.join(where)})" if where else ""
    code = getattr(exc, "sqlstate", None)
    source = f"SQLSTATE {code}" if code else "refused by psycopg"
    return f"{source} {type(exc).__name__}: {mask(primary)}{suffix}"


class PostgresWriter:
    def __init__(self, spec: SyncSpec, dsn: str, table: str) -> None:
        assert isinstance(spec.destination, PostgresDestination)
        self.spec, self.dsn = spec, dsn
        self.schema, self.table = table.split(".")
        self.batch_size = spec.destination.batch_size
        self.where = f"PostgreSQL destination {self.schema}.{self.table} (sync {spec.name})"

    def _connect(self, **kw: Any) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.dsn, connect_timeout=10, **kw)
        except psycopg.OperationalError as exc:
            raise DestinationUnavailable(f"{self.where}: cannot connect: {mask(exc)}") from None

    def _columns(self, cur: Any) -> dict[str, tuple[str, str]]:
        """Destination column -> (its type without modifiers, its pg_type category)."""
        cur.execute(
            "select a.attname, format_type(a.atttypid, null), t.typcategory "
            "from pg_attribute a join pg_type t on t.oid = a.atttypid "
            "where a.attrelid = to_regclass(%s) and a.attnum > 0 and not a.attisdropped",
            [self._regclass(cur)],
        )
        return {name: (typ, cat) for name, typ, cat in cur.fetchall()}

    def _regclass(self, cur: Any) -> str:
        from psycopg import sql

        return sql.Identifier(self.schema, self.table).as_string(cur.connection)

    def _missing(self, columns: dict[str, tuple[str, str]]) -> None:
        missing = [c for c in [*self.spec.fields, *BOOKKEEPING] if c not in columns]
        if missing:
            raise ValueError(
                f"{self.where} lacks the columns {missing} this sync writes (its fields plus "
                f"{', '.join(BOOKKEEPING)})"
            )

    # --- dry run --------------------------------------------------------------------------

    def check(self, changes: pd.DataFrame) -> Check:
        """Connect read-only; the table's columns, their types, the key's unique index and the
        privileges this mode needs; which changed keys the table holds."""
        conn = self._connect()
        conn.read_only = True
        key = self.spec.key_field
        try:
            with conn.cursor() as cur:
                columns = self._columns(cur)
                if not columns:
                    cur.execute(
                        "select has_schema_privilege(%s, 'CREATE') "
                        "from pg_namespace where nspname = %s",
                        [self.schema, self.schema],
                    )
                    row = cur.fetchone()
                    if not (row and row[0]):
                        raise ValueError(
                            f"{self.where}: the table does not exist and this role may not "
                            f"create it (no CREATE on schema {self.schema}, or no such schema)"
                        )
                    return Check(
                        f"connected; table {self.schema}.{self.table} does not exist, the first "
                        "sync creates it",
                        existing=set(),
                    )
                self._missing(columns)
                self._types(columns, changes)
                self._privileges(cur)
                if self.spec.mode != "update_only":
                    self._unique_key(cur)
                    self._unfilled(cur)
                return Check(
                    f"connected; table {self.schema}.{self.table} has the {len(self.spec.fields)} "
                    "fields with fitting types",
                    existing=self._existing(cur, columns[key][0], list(changes["_key"])),
                )
        finally:
            conn.rollback()
            conn.close()

    def _types(self, columns: dict[str, tuple[str, str]], changes: pd.DataFrame) -> None:
        rows = changes[changes["_operation"] != "delete"]
        wrong = []
        for dest, src in self.spec.fields.items():
            typ, category = columns[dest]
            kind = _kind(rows[dest])
            if category not in _FITS[kind]:
                wrong.append(f"{dest} is {typ}, {src} holds {rows[dest].dtype} values")
            elif kind == "f" and typ in _INTEGER_TYPES:
                values = rows[dest].dropna()
                fractions = values[values != values.round()]
                if not fractions.empty:
                    key = rows.loc[fractions.index[0], "_key"]
                    wrong.append(
                        f"{dest} is {typ}, {src} holds {len(fractions)} fraction(s) "
                        f"(e.g. {fractions.iloc[0]} for key {key}), which it would reject"
                    )
        if wrong:
            raise ValueError(f"{self.where}: column types do not fit: {'; '.join(wrong)}")

    def _privileges(self, cur: Any) -> None:
        need = {"upsert": ["INSERT", "UPDATE"], "update_only": ["UPDATE"]}.get(
            self.spec.mode, ["INSERT", "UPDATE", "DELETE"]
        )
        target = self._regclass(cur)
        lacking = []
        for privilege in ["SELECT", *need]:
            cur.execute("select has_table_privilege(%s, %s)", [target, privilege])
            row = cur.fetchone()
            if not (row and row[0]):
                lacking.append(privilege)
        if lacking:
            raise PermissionError(f"{self.where}: this role lacks {', '.join(lacking)} on it")

    def _unique_key(self, cur: Any) -> None:
        cur.execute(
            "select count(*) from pg_index i join pg_attribute a "
            "on a.attrelid = i.indrelid and a.attnum = i.indkey[0] "
            "where i.indrelid = to_regclass(%s) and i.indisunique and i.indnkeyatts = 1 "
            "and i.indpred is null and a.attname = %s",
            [self._regclass(cur), self.spec.key_field],
        )
        row = cur.fetchone()
        if not (row and row[0]):
            raise ValueError(
                f"{self.where}: no unique index or primary key on {self.spec.key_field} alone "
                f"(mode {self.spec.mode} upserts by it)"
            )

    def _unfilled(self, cur: Any) -> None:
        """Columns an INSERT must fill (NOT NULL, no default) that this sync does not write."""
        cur.execute(
            "select attname from pg_attribute where attrelid = to_regclass(%s) and attnum > 0 "
            "and not attisdropped and attnotnull and not atthasdef and attidentity = '' "
            "and attgenerated = ''",
            [self._regclass(cur)],
        )
        unfilled = sorted({r[0] for r in cur.fetchall()} - {*self.spec.fields, *BOOKKEEPING})
        if unfilled:
            raise ValueError(
                f"{self.where}: columns {unfilled} are NOT NULL without a default and this sync "
                f"does not write them: every insert would be rejected"
            )

    def _existing(self, cur: Any, key_type: str, keys: list[str]) -> set[str]:
        from psycopg import sql

        cur.execute(
            sql.SQL("select {k}::text from {t} where {k}::text = any(%s)").format(
                k=sql.Identifier(self.spec.key_field),
                t=sql.Identifier(self.schema, self.table),
            ),
            [keys],
        )
        return {r[0] for r in cur.fetchall()}

    # --- send -----------------------------------------------------------------------------

    def send(self, changes: pd.DataFrame, run_id: str, *, force: bool = False) -> DestinationResult:
        from psycopg import sql

        result = DestinationResult(accepted=set(), failed={})
        cols = list(self.spec.fields)
        conn = self._connect()
        with conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("set local time zone 'UTC'")
            columns = self._columns(cur)
            if columns:
                self._missing(columns)
            else:
                self._create(cur, changes)
                columns = self._columns(cur)
            cur.execute(
                sql.SQL(
                    "create temp table _stage (_op text, _key text primary key, _hash text, {}) "
                    "on commit drop"
                ).format(
                    sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in cols)
                )
            )
            rows = [
                tuple(r)
                for r in changes[["_operation", "_key", "_hash", *cols]].itertuples(index=False)
            ]
            staged = self._stage(conn, cur, rows, result)
            cur.execute("analyze _stage")  # batches pick their records by key
            apply = _Apply(self.spec, self.schema, self.table, columns, run_id, force)
            whole = 0  # batches in a row whose every record was rejected
            for start in range(0, len(staged), self.batch_size):
                batch = staged[start : start + self.batch_size]
                try:
                    with conn.transaction():
                        result.accepted |= set(batch) - apply(cur, batch)
                        result.skipped |= apply.skipped
                    whole = 0
                    continue
                except Exception as exc:
                    if not is_data_error(exc):
                        raise
                    why = reason(exc)
                if whole >= GIVE_UP_AFTER:
                    # the table refuses every record (a NOT NULL column the sync does not fill,
                    # say): record by record would only repeat it, batch after batch
                    note = (
                        f"batch not applied: {why} (the {whole} batches before were rejected "
                        "record by record, every record)"
                    )
                    result.failed.update(dict.fromkeys(batch, note))
                    log.warning("sync %s: %s", self.spec.name, note)
                    continue
                log.info(
                    "sync %s: a batch of %s failed on %s; applying it record by record",
                    self.spec.name,
                    len(batch),
                    why,
                )
                rejected = self._one_by_one(conn, cur, apply, batch, result)
                whole = whole + 1 if rejected == len(batch) > 1 else 0
        return result

    def _one_by_one(
        self, conn: Any, cur: Any, apply: _Apply, batch: list[str], result: DestinationResult
    ) -> int:
        """Apply each record of a failed batch under its own savepoint; the number rejected."""
        rejected = 0
        for key in batch:
            try:
                with conn.transaction():
                    skipped = apply(cur, [key])
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                rejected += 1
                result.failed[key] = reason(exc)
                log.warning(
                    "sync %s: %s rejected record %s: %s",
                    self.spec.name,
                    self.where,
                    key,
                    result.failed[key],
                )
                continue
            (result.skipped if skipped else result.accepted).add(key)
        return rejected

    def _create(self, cur: Any, changes: pd.DataFrame) -> None:
        from psycopg import sql

        key = self.spec.key_field
        rows = changes[changes["_operation"] != "delete"]
        types = {c: "text" if c == key else _create_type(rows[c]) for c in self.spec.fields}
        cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(self.schema)))
        cur.execute(
            sql.SQL(
                "create table {} ({}, _sync_hash text, _synced_at timestamptz, "
                "_sync_run_id text, primary key ({}))"
            ).format(
                sql.Identifier(self.schema, self.table),
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in types.items()
                ),
                sql.Identifier(key),
            )
        )

    def _stage(
        self, conn: Any, cur: Any, rows: list[tuple[Any, ...]], result: DestinationResult
    ) -> list[str]:
        """COPY the records into `_stage`; if that fails on a value (a NUL byte, an encoding
        error), stage them one at a time and reject the ones that do not go in."""
        from psycopg import sql

        copy_sql = sql.SQL("copy _stage from stdin")
        try:
            with conn.transaction(), cur.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row([_pg_text(v) for v in row])
            return [r[1] for r in rows]
        except Exception as exc:
            if not is_data_error(exc):
                raise
        placeholders = sql.SQL(", ").join(sql.Placeholder() * len(rows[0]))
        staged = []
        for row in rows:
            try:
                with conn.transaction():
                    cur.execute(
                        sql.SQL("insert into _stage values ({})").format(placeholders),
                        [_pg_text(v) for v in row],
                    )
                staged.append(row[1])
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                result.failed[row[1]] = reason(exc)
                log.warning(
                    "sync %s: record %s not staged: %s", self.spec.name, row[1], reason(exc)
                )
        return staged


class _Apply:
    """The statements that apply staged records (by `_key`) to the table; calling it returns the
    keys it skipped (update_only: no record of that key in the table)."""

    def __init__(
        self,
        spec: SyncSpec,
        schema: str,
        table: str,
        columns: dict[str, tuple[str, str]],
        run_id: str,
        force: bool,
    ) -> None:
        from psycopg import sql

        self.spec, self.run_id = spec, run_id
        self.skipped: set[str] = set()
        self.exists: sql.Composed | None = None
        key = spec.key_field
        t = sql.Identifier(schema, table)
        ident = {c: sql.Identifier(c) for c in spec.fields}
        # an integer column takes a whole number however it is spelled ("3" or "3.0"); a
        # fraction is an error (22P02) for that record, never rounded
        cast = {
            c: sql.SQL(
                "cast(regexp_replace(s.{}, '\\.0+$', '') as {})"
                if columns[c][0] in _INTEGER_TYPES
                else "cast(s.{} as {})"
            ).format(ident[c], sql.SQL(columns[c][0]))
            for c in spec.fields
        }
        key_match = sql.SQL("t.{k} = cast(s._key as {typ})").format(
            k=ident[key], typ=sql.SQL(columns[key][0])
        )
        changed = sql.SQL("") if force else sql.SQL(" and t._sync_hash is distinct from s._hash")
        self.delete = sql.SQL(
            "delete from {t} t using _stage s where {match} and s._op = 'delete' "
            "and s._key = any(%(keys)s)"
        ).format(t=t, match=key_match)
        if spec.mode == "update_only":
            self.exists = sql.SQL(
                "select s._key from _stage s join {t} t on {match} where s._key = any(%(keys)s)"
            ).format(t=t, match=key_match)
            self.write = sql.SQL(
                "update {t} t set {assign}, _sync_hash = s._hash, _synced_at = now(), "
                "_sync_run_id = %(run)s from _stage s where {match} and s._key = any(%(keys)s)"
                "{changed}"
            ).format(
                t=t,
                assign=sql.SQL(", ").join(
                    sql.SQL("{} = {}").format(ident[c], cast[c]) for c in spec.fields if c != key
                ),
                match=key_match,
                changed=changed,
            )
        else:
            where = (
                sql.SQL("")
                if force
                else sql.SQL(" where t._sync_hash is distinct from excluded._sync_hash")
            )
            self.write = sql.SQL(
                "insert into {t} as t ({cols}, _sync_hash, _synced_at, _sync_run_id) "
                "select {casts}, s._hash, now(), %(run)s from _stage s "
                "where s._op <> 'delete' and s._key = any(%(keys)s) "
                "on conflict ({k}) do update set {assign}, _sync_hash = excluded._sync_hash, "
                "_synced_at = excluded._synced_at, _sync_run_id = excluded._sync_run_id{where}"
            ).format(
                t=t,
                cols=sql.SQL(", ").join(ident.values()),
                casts=sql.SQL(", ").join(cast.values()),
                k=ident[key],
                assign=sql.SQL(", ").join(
                    sql.SQL("{} = excluded.{}").format(ident[c], ident[c])
                    for c in spec.fields
                    if c != key
                ),
                where=where,
            )

    def __call__(self, cur: Any, keys: list[str]) -> set[str]:
        params = {"keys": keys, "run": self.run_id}
        self.skipped = set()
        if self.exists is not None:
            cur.execute(self.exists, params)
            self.skipped = set(keys) - {r[0] for r in cur.fetchall()}
        cur.execute(self.write, params)
        if self.spec.mode == "mirror":
            cur.execute(self.delete, params)
        return self.skipped
