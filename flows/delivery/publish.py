"""Publish marts and scores to the serving DuckDB file and Parquet, atomically.

The pipeline writes only its private warehouse. BI tools and syncs read the serving file
(`<serving>/expansion.duckdb`) and the Parquet copies (`<serving>/parquet/current/*.parquet`).
Both are replaced whole: a new file (or directory) is written beside the old one and swapped
in with `os.replace`, so a reader sees the old version or the new one, never half of one. A
reader that holds the old file open keeps reading it until it reconnects. The serving file is
written with `storage_version` v1.0.0 so DuckDB 1.x clients can open it.

A process killed part-way leaves either the old version (killed before the rename) or the new
serving file with the previous Parquet `current` (killed between the two swaps), plus temp
files. `recover` (at the start of every run and every publish) removes the temp files and
points `current` at the Parquet version written with the serving file in place, which
`_publication.parquet_version` names.

The clock: the serving version in place is never replaced by one with an EARLIER as_of. A
publish for a date before `_publication.as_of` writes the score history only, as a backfill
does (`history_only`): every other table, and its Parquet file, stays as it was, and the
report says so (`PublishReport.history_only`, `note`), so the pipeline sends nothing.
`flows/pipeline.py` plans such a run as history-only from the start; this check is the
defence in depth, made under the caller's pipeline lock right before the swap.

PostgreSQL serving (`postgres`, see flows/delivery/serving_postgres.py): the finished serving
file is copied into a new PostgreSQL schema BEFORE either swap, then PostgreSQL is switched (one
transaction) and then the file is renamed. Whatever fails before that (the copy, a reader's
lock past `lock_timeout`, the server) fails the run with both the PostgreSQL schema and the
serving file at the previous version. PostgreSQL goes first because its switch is the step that
can fail for reasons outside this machine (locks, the network); the rename that follows cannot
fail short of a crash. A kill between the two (crash point `publish.postgres_switched`) leaves
PostgreSQL one version ahead of the file: the next publish says so (a warning naming both
run_ids) and publishes both again.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from flows import schemas
from flows.delivery import serving_postgres
from flows.delivery.serving_postgres import PostgresServing
from flows.faults import crash_point
from flows.files import readable
from flows.masking import mask_text
from flows.warehouse import Warehouse, sql_str, table_columns

log = logging.getLogger(__name__)

PUBLISHED: dict[str, str] = {
    # serving table        <- warehouse relation
    "accounts": "marts.accounts",
    "contracts": "marts.contracts",
    "mrr_movements": "marts.mrr_movements",
    "revenue_metrics_monthly": "marts.revenue_metrics_monthly",
    "mrr_billing_reconciliation": "marts.mrr_billing_reconciliation",
    "account_scores": "scores.account_scores",
    "account_score_history": "scores.account_score_history",
    "account_alerts": "scores.account_alerts",
    "model_metrics": "scores.model_metrics",
}
SERVING_STORAGE_VERSION = "v1.0.0"
KEEP_PARQUET_VERSIONS = 3


@dataclass
class PublishReport:
    serving_db: str
    parquet_dir: str
    rows: dict[str, int] = field(default_factory=dict)
    history_only: bool = False  # the current version stayed; only the score history changed
    note: str = ""  # why, in words, for the run summary
    postgres: str = ""  # what PostgreSQL serving did, in words ("" when not configured)


def published_as_of(serving_db: Path) -> date | None:
    """The as_of of the serving version in place (None: nothing published, or a history-only
    first publication that has no current scores)."""
    if not serving_db.is_file():
        return None
    with Warehouse(serving_db).connect(read_only=True) as con:
        row = con.execute("select max(as_of) from _publication").fetchone()
    return row[0] if row and row[0] else None


# A published as_of further ahead of the wall clock (UTC) than this was set by a clock error
# before the as_of rule (flows/run/as_of.py) existed: it does not hold back a real date.
FUTURE_TOLERANCE = timedelta(days=1)


def replaces_current(as_of: date, current: date | None, *, now: datetime | None = None) -> bool:
    """Whether a run of `as_of` may replace the serving version of `current` as_of: the same
    date (a rerun) or a later one, or nothing (credible) in place."""
    if current is None or as_of >= current:
        return True
    if current > ((now or datetime.now(UTC)).astimezone(UTC) + FUTURE_TOLERANCE).date():
        log.warning(
            "the serving version in place has as_of %s, later than today in UTC plus %s day: "
            "a date no run can have scored; the run of %s replaces it",
            current,
            FUTURE_TOLERANCE.days,
            as_of,
        )
        return True
    return False


def _current_as_of(target: Path) -> date | None:
    try:
        return published_as_of(target)
    except duckdb.Error as exc:  # unreadable: it serves nobody, a new version may replace it
        log.warning("could not read _publication of %s: %s", target, exc)
        return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


HISTORY_TABLES = ("account_score_history",)


def publish(
    warehouse: Warehouse,
    serving_dir: Path,
    run_id: str,
    as_of: str,
    model_version: str,
    *,
    history_only: bool = False,
    postgres: PostgresServing | None = None,
) -> PublishReport:
    """Copy the published relations into a fresh serving file + Parquet set and swap them in.

    `history_only` (backfills): every table comes from the current serving version except the
    score history, so BI's current scores and marts stay as they are (their Parquet files are
    the same bytes); with no version published yet, the other tables go out empty and
    `_publication.as_of` is null. A publish whose as_of is before the serving version's is
    history-only whatever the caller asked (see the module's docstring).
    """
    serving_dir.mkdir(parents=True, exist_ok=True)
    target = serving_dir / "expansion.duckdb"
    tmp = serving_dir / f".expansion.duckdb.{run_id}.tmp"
    versions = serving_dir / "parquet" / "versions"
    version_dir = versions / run_id
    recover(serving_dir)
    shutil.rmtree(version_dir, ignore_errors=True)
    version_dir.mkdir(parents=True)

    report = PublishReport(
        serving_db=str(target), parquet_dir=str(serving_dir / "parquet" / "current")
    )
    current = _current_as_of(target)
    if not history_only and not replaces_current(date.fromisoformat(as_of), current):
        history_only = True
        report.note = (
            f"as_of {as_of} is before the as_of of the serving version in place ({current}): "
            "only the score history was published; the current scores, marts and Parquet "
            "files stay as they were"
        )
        log.warning("%s", report.note)
    elif history_only:
        report.note = (
            f"history only: the scores of {as_of} were added to the score history; the current "
            f"scores and marts (as_of {current}) stay as they were"
        )
    report.history_only = history_only
    if postgres is not None:
        _check_agreement(postgres, target)
    previous_parquet = serving_dir / "parquet" / "current"
    with warehouse.connect() as con:
        con.execute(
            f"attach {sql_str(tmp.as_posix())} as serving "
            f"(storage_version {sql_str(SERVING_STORAGE_VERSION)})"
        )
        sources = dict(PUBLISHED)
        # A backfill before anything was published has no current version to keep: its
        # history goes out with the other tables empty (their columns, no rows), so BI sees
        # the history and no current scores, never a past date's marts presented as current.
        first = history_only and not target.exists()
        if history_only and not first:
            con.execute(f"attach {sql_str(target.as_posix())} as previous (read_only)")
            sources = {
                name: relation if name in HISTORY_TABLES else f"previous.main.{name}"
                for name, relation in PUBLISHED.items()
            }
        if first:
            schemas.ensure(con, "scores.account_alerts")  # written by daily runs only
        for name, relation in sources.items():
            if history_only and not table_columns(con, relation):  # e.g. no model promoted
                log.warning("%s does not exist yet: %s is not published", relation, name)
                continue
            empty = " limit 0" if first and name not in HISTORY_TABLES else ""
            con.execute(f"create table serving.main.{name} as select * from {relation}{empty}")
            count = con.execute(f"select count(*) from serving.main.{name}").fetchone()
            report.rows[name] = int(count[0]) if count else 0
            out = version_dir / f"{name}.parquet"
            kept = previous_parquet / f"{name}.parquet"
            if history_only and not first and name not in HISTORY_TABLES and kept.is_file():
                shutil.copyfile(kept, out)  # the same bytes BI reads now
            else:
                con.execute(
                    f"copy serving.main.{name} to {sql_str(out.as_posix())} (format parquet)"
                )
        if first:
            con.execute(
                "create table serving.main._publication as select ? as run_id, "
                "cast(? as timestamp) as published_at, cast(null as date) as as_of, "
                "cast(null as varchar) as model_version, ? as parquet_version",
                [run_id, datetime.now(UTC).replace(tzinfo=None), run_id],
            )
        elif history_only:
            con.execute(
                "create table serving.main._publication as select * from previous.main._publication"
            )
            con.execute("detach previous")
            con.execute(
                "alter table serving.main._publication add column if not exists parquet_version varchar"
            )
            con.execute("update serving.main._publication set parquet_version = ?", [run_id])
        else:
            con.execute(
                "create table serving.main._publication as select ? as run_id, "
                "cast(? as timestamp) as published_at, cast(? as date) as as_of, "
                "? as model_version, ? as parquet_version",
                [run_id, datetime.now(UTC).replace(tzinfo=None), as_of, model_version, run_id],
            )
        con.execute("checkpoint serving")
        con.execute("detach serving")

    _fsync(tmp)
    readable(serving_dir)  # for BI, whatever the umask (state is 077): the new file and Parquet
    crash_point("publish.written")
    if postgres is not None:
        try:
            prepared = serving_postgres.prepare(postgres, tmp, history_only=history_only)
            crash_point("publish.postgres_built")
            report.postgres = prepared.switch()
        except serving_postgres.ServingPostgresError:
            tmp.unlink(missing_ok=True)  # neither swapped: the previous version stays in both
            shutil.rmtree(version_dir, ignore_errors=True)
            raise
        crash_point("publish.postgres_switched")
    os.replace(tmp, target)  # the atomic swap readers rely on
    _fsync(serving_dir)  # the rename itself survives a power cut
    crash_point("publish.renamed")
    _point_current(serving_dir, run_id)
    _prune(versions, keep=run_id)
    log.info("published %s tables to %s", len(report.rows), target)
    return report


def _check_agreement(postgres: PostgresServing, target: Path) -> None:
    """Warn when PostgreSQL and the serving file hold different runs (a publish killed between
    the two switches, or PostgreSQL serving newly configured): this publish writes both."""
    try:
        in_pg = serving_postgres.published_run_id(postgres)
    except Exception as exc:  # prepare() reports an unreachable server, naming it
        log.debug("could not read %s._publication: %s", postgres.schema, mask_text(str(exc)))
        return
    in_file = None
    if target.is_file():
        try:
            with Warehouse(target).connect(read_only=True) as con:
                row = con.execute("select run_id from _publication").fetchone()
            in_file = str(row[0]) if row and row[0] is not None else None
        except duckdb.Error:
            pass
    if in_pg != in_file:
        log.warning(
            "PostgreSQL serving schema %s holds run %s and the serving file %s run %s: an "
            "earlier publish stopped between the two switches, or PostgreSQL serving was newly "
            "configured; this publish writes both",
            postgres.schema,
            in_pg,
            target,
            in_file,
        )


def _point_current(serving_dir: Path, version: str) -> None:
    """Swap `parquet/current` to `versions/<version>` atomically (a new link renamed over)."""
    current = serving_dir / "parquet" / "current"
    link_tmp = serving_dir / "parquet" / f".current.{version}"
    link_tmp.unlink(missing_ok=True)
    link_tmp.symlink_to(Path("versions") / version, target_is_directory=True)
    os.replace(link_tmp, current)


def published_parquet_version(serving_db: Path) -> str | None:
    """The Parquet version written with the serving file in place (None: none recorded)."""
    if not serving_db.is_file():
        return None
    with Warehouse(serving_db).connect(read_only=True) as con:
        columns = {r[0] for r in con.execute("describe _publication").fetchall()}
        if "parquet_version" not in columns:
            return None  # published before the version was recorded
        row = con.execute("select parquet_version from _publication").fetchone()
    return str(row[0]) if row and row[0] else None


def recover(serving_dir: Path) -> list[str]:
    """Undo what a killed publish left behind; returns what was done (for the log).

    Removes unfinished serving files (`.expansion.duckdb.<run>.tmp` and their WAL) and
    unswapped `current` links, and points `parquet/current` at the Parquet version that was
    written together with the serving file in place, when a kill came between the two swaps.
    Only the holder of the pipeline lock publishes, so nothing here is in use by a writer;
    readers never open these temp files.
    """
    done: list[str] = []
    if not serving_dir.is_dir():
        return done
    for stale in sorted(serving_dir.glob(".expansion.duckdb.*.tmp*")):
        stale.unlink(missing_ok=True)
        done.append(f"removed unfinished serving file {stale.name}")
    parquet = serving_dir / "parquet"
    for stale in sorted(parquet.glob(".current.*")) if parquet.is_dir() else []:
        stale.unlink(missing_ok=True)
        done.append(f"removed unswapped link {stale.name}")
    try:
        version = published_parquet_version(serving_dir / "expansion.duckdb")
    except duckdb.Error as exc:
        log.warning("could not read _publication of the serving file: %s", exc)
        version = None
    current = parquet / "current"
    if version and (parquet / "versions" / version).is_dir():
        points_to = os.readlink(current) if current.is_symlink() else None
        if points_to != str(Path("versions") / version):
            _point_current(serving_dir, version)
            done.append(f"pointed parquet/current at {version} (was {points_to})")
    for line in done:
        log.warning("recovered from an interrupted publish: %s", line)
    return done


def _prune(versions: Path, keep: str) -> None:
    """Keep the newest Parquet versions; a reader mid-scan of an old one keeps its open files."""
    dirs = sorted((d for d in versions.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime)
    for old in dirs[:-KEEP_PARQUET_VERSIONS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
