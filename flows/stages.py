"""What each pipeline stage does, as plain functions of the settings.

`flows/pipeline.py` wraps these in Prefect tasks; the CLI and tests may call them directly.
This module (with `flows/load.py`, `flows/publish.py`, `flows/sync.py`) is where connections
are opened; `models/` stays pure.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Collection, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd

from flows.datadocs import update_data_docs
from flows.faults import armed, crash_point
from flows.load import ExtractError, LoadReport, load_sources, unload_run
from flows.publish import PublishReport
from flows.publish import publish as publish_serving
from flows.settings import Settings
from flows.sources import load_sources_config
from flows.sync import SyncFailed, SyncReport, load_syncs, run_sync
from flows.transform import (
    DbtBuildFailed,
    DbtReport,
    dbt_args,
    dbt_env,
    model_params,
    summarize,
)
from flows.validate import (
    GateFailed,
    GateResult,
    enforce_all,
    jsonable,
    load_suite,
    suite_query,
    validate_frame,
    write_results,
)
from flows.warehouse import connect, latest_data_date, read_frame, replace_table
from models.files import JsonFileCache, write_atomic
from models.fingerprint import data_fingerprint
from models.psi import reference as drift_reference
from models.psi import stability_against

__all__ = [
    "DbtReport",
    "ExtractError",
    "GateResult",
    "LoadReport",
    "PublishReport",
    "SyncReport",
]

if TYPE_CHECKING:
    from models.params import Params

log = logging.getLogger(__name__)


class PipelineBusy(RuntimeError):
    """Another run holds the pipeline lock."""


LOCK_POLL_SECONDS = 0.5


@contextlib.contextmanager
def pipeline_lock(
    settings: Settings, *, wait: float = 0.0, holder: str = "expansion"
) -> Iterator[None]:
    """One writer at a time: an exclusive `flock` on `<home>/pipeline.lock`.

    The kernel releases the lock when its holder exits, however it exits (SIGKILL
    included), so a crashed run never blocks the next one; the file itself may stay. `wait`
    seconds: how long to wait for a running holder (0: fail at once) before PipelineBusy.
    `holder` says who holds it, for the message the waiting side prints.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    path = settings.home / "pipeline.lock"
    fh = path.open("a+")
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        announced = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                fh.seek(0)
                current = fh.read().strip() or "unknown"
                if time.monotonic() >= deadline:
                    waited = f"; waited {wait:g} s" if wait > 0 else ""
                    raise PipelineBusy(
                        f"another pipeline run holds {path} ({current}){waited}; "
                        "wait for it to finish"
                    ) from None
                if not announced:
                    log.warning("waiting up to %g s for %s to release %s", wait, current, path)
                    announced = True
                time.sleep(LOCK_POLL_SECONDS)
        fh.seek(0)
        fh.truncate()
        fh.write(f"{holder} pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}")
        fh.flush()
        yield
    finally:
        fh.close()


def recover(settings: Settings) -> list[str]:
    """Finish or undo what a killed run left behind (call while holding the pipeline lock).

    Unfinished serving files and Parquet links (`flows.publish.recover`), interrupted model
    saves and a champion history entry (`models.registry`), and run records still saying
    `running`: their process is gone (it would hold the lock), so they become `interrupted`.
    Everything else a killed run leaves is safe as it is: raw rows and the load ledger, the
    scores and the sync ledger are written in transactions, and the next run redoes the rest.
    """
    from flows.publish import recover as recover_serving
    from models.registry import clean_staging, repair_history

    done = [f"serving: {line}" for line in recover_serving(settings.serving)]
    for leftover in clean_staging(settings.registry):
        done.append(f"registry: removed unfinished {leftover}")
    if settings.registry.is_dir() and repair_history(settings.registry):
        done.append("registry: appended the champion's missing history entry")
    for path in sorted(settings.runs_dir.glob("*.json")) if settings.runs_dir.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("status") == "running":
            record["status"] = "interrupted"
            record["error"] = "the process ended before the run finished (killed or crashed)"
            write_run_record(settings, record)
            done.append(f"run {record.get('run_id')}: marked interrupted")
    for stale in sorted(settings.runs_dir.glob("*.json.tmp")) if settings.runs_dir.is_dir() else []:
        stale.unlink(missing_ok=True)
    for line in done:
        if not line.startswith("serving: "):  # flows.publish logged those
            log.warning("recovered after an interrupted run: %s", line)
    return done


# --- load ----------------------------------------------------------------------------------


def load_raw(settings: Settings, run_id: str) -> LoadReport:
    """Pull what is new from every source in config/sources.yml and append it to raw."""
    config = load_sources_config(settings.sources_file, settings.landing_dir)
    _ensure_raw_checked(settings)
    report = load_sources(
        config,
        settings.warehouse,
        run_id,
        full_refresh=settings.full_refresh,
        memory_limit=settings.duckdb_memory_limit,
        staging_dir=settings.home / "extracts",
    )
    crash_point("load.committed")
    return report


RAW_CHECKED = "quality.raw_checked"


def _ensure_raw_checked(settings: Settings) -> None:
    """`quality.raw_checked`: the load runs whose raw rows passed the raw gate.

    Created before the first load that needs it. The runs already in the ledger then were
    gated by their own runs (this table did not exist yet), so they are recorded as checked.
    """
    with connect(settings.warehouse, memory_limit=settings.duckdb_memory_limit) as con:
        if _table_columns(con, RAW_CHECKED):
            return
        con.execute("begin transaction")
        con.execute("create schema if not exists quality")
        con.execute(f"create table {RAW_CHECKED} (run_id varchar, checked_at timestamp)")
        if _table_columns(con, "raw._load_ledger"):
            con.execute(
                f"insert into {RAW_CHECKED} select distinct run_id, current_timestamp "
                "from raw._load_ledger"
            )
        con.execute("commit")


def _unchecked_runs(settings: Settings, run_id: str) -> list[str]:
    """Earlier runs whose loaded rows never passed the raw gate: a run killed between its
    load and its gate. Their rows are in raw and their files in the ledger (so they are not
    loaded again): this run's gate checks them too."""
    with connect(
        settings.warehouse, read_only=True, memory_limit=settings.duckdb_memory_limit
    ) as con:
        if not _table_columns(con, RAW_CHECKED) or not _table_columns(con, "raw._load_ledger"):
            return []
        rows = con.execute(
            f"select distinct run_id from raw._load_ledger where run_id <> ? and run_id not in "
            f"(select run_id from {RAW_CHECKED}) order by run_id",
            [run_id],
        ).fetchall()
    return [str(r[0]) for r in rows]


def _mark_raw_checked(settings: Settings, run_ids: list[str]) -> None:
    with connect(settings.warehouse, memory_limit=settings.duckdb_memory_limit) as con:
        if not _table_columns(con, RAW_CHECKED):
            return
        con.execute("begin transaction")
        con.execute(
            f"delete from {RAW_CHECKED} where run_id in (select unnest(?::varchar[]))", [run_ids]
        )
        con.execute(
            f"insert into {RAW_CHECKED} select unnest(?::varchar[]), current_timestamp",
            [run_ids],
        )
        con.execute("commit")


class SourceStale(RuntimeError):
    """A source has not delivered within its freshness window (dbt source freshness)."""


def check_freshness(settings: Settings) -> list[dict[str, Any]]:
    """`dbt source freshness` on the raw tables; error_after fails the run when enforced.

    Run with the vars the build will get (the as_of the loaded data gives), so the build
    reuses dbt's parse instead of parsing the project again (dbt re-parses everything
    when --vars change between two commands)."""
    if settings.freshness == "off":
        return []
    from dbt.cli.main import dbtRunner

    latest = latest_data_date(settings.warehouse)
    args = dbt_args(["source", "freshness"], settings, settings.as_of or latest)
    with dbt_env(settings):
        result = dbtRunner().invoke(args)
    rows = []
    for r in getattr(result.result, "results", None) or []:
        status = str(getattr(r.status, "value", r.status))
        age = getattr(r, "age", None)
        rows.append(
            {
                "source": r.node.unique_id.removeprefix("source.expansion."),
                "status": status,
                "max_loaded_at": str(getattr(r, "max_loaded_at", "")),
                "age_hours": round(age / 3600, 1) if isinstance(age, int | float) else None,
            }
        )
    stale = [r for r in rows if r["status"] in {"error", "runtime error"}]
    for r in rows:
        if r["status"] == "warn":
            log.warning(
                "source %s is getting stale: last load %s h ago", r["source"], r["age_hours"]
            )
    if stale and settings.freshness == "enforce":
        names = ", ".join(f"{r['source']} (last load {r['age_hours']} h ago)" for r in stale)
        raise SourceStale(
            f"source(s) have not delivered within their freshness window: {names}; "
            "see freshness in dbt_project/models/staging/*/_*__sources.yml, or set "
            "EXPANSION_FRESHNESS=warn"
        )
    return rows


def resolve_as_of(settings: Settings) -> date:
    """The run's as_of: the configured date, or the latest day with usage data."""
    latest = latest_data_date(settings.warehouse)
    if latest is None:
        raise ExtractError("raw.usage__usage_daily is empty: nothing to score")
    if settings.as_of is None:
        return latest
    if settings.as_of > latest:
        raise ValueError(
            f"as_of {settings.as_of} is after the latest usage data ({latest}); "
            "scores would rest on missing data"
        )
    return settings.as_of


# --- validation gates ----------------------------------------------------------------------
# Each gate runs the suites of its edge (meta.edge in expectations/*.json), writes the GX
# validation results to <home>/quality/<run_id>/, refreshes the offline Data Docs, records
# each suite's row count in quality.gate_history and raises GateFailed on a critical failure.


def _suites(settings: Settings, edge: str) -> list[Path]:
    out = []
    for path in sorted(settings.expectations.glob("*.json")):
        meta = json.loads(path.read_text()).get("meta", {})
        if meta.get("edge") == edge:
            out.append(path)
    return out


def quality_dir(settings: Settings) -> Path:
    """Validation results (<run_id>/<suite>.json) and Data Docs (data_docs/index.html)."""
    return settings.home / "quality"


def _table_columns(con: Any, relation: str) -> dict[str, str]:
    """Column name -> DuckDB type of `schema.table` (empty when it does not exist)."""
    schema, name = relation.split(".", 1)
    rows = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, name],
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _arrow_frame(con: Any, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    """A query's rows as a DataFrame through Arrow: several times faster than `.df()` for
    string columns (2.1M usage rows: 0.7 s instead of 3 s)."""
    rel = con.sql(sql, params=params or None)
    fetch = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table  # duckdb 2.x / 1.x
    frame: pd.DataFrame = fetch().to_pandas(date_as_object=False)
    # GX's pandas `between` is vectorised only for int64 / float64 / datetime64[ns] columns and
    # calls a Python function per value otherwise (INTEGER arrives as int32, DATE as
    # datetime64[ms]): 0.4 s instead of 0.01 s per expectation on 300k rows.
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, np.dtype) and dtype.kind in "iu" and dtype.itemsize < 8:
            frame[name] = frame[name].astype("int64")
        elif pd.api.types.is_datetime64_dtype(dtype) and dtype != "datetime64[ns]":
            with contextlib.suppress(pd.errors.OutOfBoundsDatetime):  # e.g. 9999-12-31
                frame[name] = frame[name].astype("datetime64[ns]")
    return frame


def _read_suite_frame(
    con: Any, path: Path, spec: dict[str, Any], params: dict[str, Any], extra_where: str | None
) -> pd.DataFrame:
    """Just the columns (and computed columns) the suite references, read from DuckDB."""
    table = spec["meta"]["table"]
    available = _table_columns(con, table)
    if not available:
        raise ValueError(f"expectation suite {path.name}: table {table} does not exist")
    sql, names = suite_query(spec, available, extra_where)
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(
            f"expectation suite {path.name}: SQL parameter(s) {missing} are not provided "
            f"by the {spec['meta'].get('edge')} gate; it provides {sorted(params)}"
        )
    return _arrow_frame(con, sql, {n: params[n] for n in names})


def _previous_row_counts(settings: Settings, run_id: str | None, as_of: date) -> dict[str, int]:
    """Each suite's row count in the latest earlier run where it passed, among runs as of
    this date or before: the one with the latest as_of, then the latest validated (a backfill
    of a past date compares with the past, and today's run does not compare with a backfill)."""
    if not settings.warehouse.exists():
        return {}
    with connect(
        settings.warehouse, read_only=True, memory_limit=settings.duckdb_memory_limit
    ) as con:
        if not _table_columns(con, "quality.gate_history"):
            return {}
        rows = con.execute(
            "select suite, row_count from quality.gate_history "
            "where passed and run_id is distinct from ? and as_of <= ? "
            "qualify row_number() over "
            "(partition by suite order by as_of desc, validated_at desc) = 1",
            [run_id, as_of],
        ).fetchall()
    return {str(suite): int(count) for suite, count in rows}


def _record_history(
    settings: Settings, run_id: str, results: list[GateResult], as_of: date | None
) -> None:
    with connect(settings.warehouse, memory_limit=settings.duckdb_memory_limit) as con:
        con.execute("create schema if not exists quality")
        con.execute(
            "create table if not exists quality.gate_history ("
            "run_id varchar, as_of date, edge varchar, suite varchar, table_name varchar, "
            "row_count bigint, passed boolean, critical_failures integer, "
            "warning_failures integer, validated_at timestamp)"
        )
        con.execute("begin transaction")
        for r in results:
            con.execute(
                "delete from quality.gate_history where run_id = ? and suite = ?", [run_id, r.suite]
            )
            con.execute(
                "insert into quality.gate_history values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    as_of,
                    r.edge,
                    r.suite,
                    r.table,
                    r.rows,
                    r.passed,
                    len(r.critical),
                    len(r.warnings),
                    datetime.fromisoformat(r.validated_at.replace("Z", "+00:00")).replace(
                        tzinfo=None
                    ),
                ],
            )
        con.execute("commit")


def _report_gate(
    settings: Settings, run_id: str | None, results: list[GateResult], as_of: date | None = None
) -> None:
    """Results JSON, Data Docs and row-count history; a report that cannot be written is
    logged, never allowed to hide the gate's own outcome."""
    if not run_id or not results:
        return
    try:
        paths = write_results(results, quality_dir(settings) / run_id, run_id)
        index, pages = update_data_docs(quality_dir(settings), paths)
        for r in results:
            r.data_docs = str(index)
            r.page = str(pages[r.suite]) if r.suite in pages else None
    except Exception as exc:  # the gate's outcome stands even when its report cannot be written
        log.warning("could not write validation results or Data Docs: %s", exc)
    try:
        _record_history(settings, run_id, results, as_of)
    except duckdb.Error as exc:
        log.warning("could not record row counts in quality.gate_history: %s", exc)


def _run_suites(
    settings: Settings,
    edge: str,
    params: dict[str, Any],
    extra_where: str | None = None,
    per_suite: dict[str, dict[str, Any]] | None = None,
    skip_when: Collection[str] = (),
) -> list[GateResult]:
    results = []
    with connect(
        settings.warehouse, read_only=True, memory_limit=settings.duckdb_memory_limit
    ) as con:
        for path in _suites(settings, edge):
            spec = load_suite(path)
            if spec.get("meta", {}).get("when") in skip_when:
                log.info("suite %s skipped: it applies when a model is trained", path.stem)
                continue
            suite_params = {**params, **(per_suite or {}).get(spec.get("name", path.stem), {})}
            frame = _read_suite_frame(con, path, spec, suite_params, extra_where)
            if edge == "raw" and frame.empty:
                continue  # nothing of this table loaded by this run
            results.append(validate_frame(frame, path, parameters=suite_params))
    return results


def validate_raw(settings: Settings, run_id: str) -> list[GateResult]:
    """Check the rows this run loaded into raw (earlier loads were checked when they came).

    On a critical failure the run's rows are taken back out of raw, so the bad files are
    checked again next run instead of flowing silently into the marts.
    """
    now = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None))
    params = {"run_id": run_id, "now": now}
    pending = _unchecked_runs(settings, run_id)
    if pending:
        log.warning(
            "also checking the raw rows of interrupted run(s) %s: loaded, never gated",
            ", ".join(pending),
        )
    runs = [run_id, *pending]
    where = "_run_id in (" + ", ".join("'" + r.replace("'", "''") + "'" for r in runs) + ")"
    results = _run_suites(settings, "raw", params, extra_where=where)
    _report_gate(settings, run_id, results)
    try:
        passed = enforce_all(results)
    except GateFailed:
        for run in runs:
            unload_run(settings.warehouse, run)
        raise
    _mark_raw_checked(settings, runs)
    return passed


def validate_marts(
    settings: Settings,
    as_of: date,
    run_id: str | None = None,
    training: bool | None = None,
) -> list[GateResult]:
    """The marts the model and BI read; row counts against the previous passing run.

    Suites with `meta.when: "training"` (the rows a model learns from) run only when this run
    trains one (`training`; default: `will_train` with `settings.retrain`): a scoring run
    with a champion trained elsewhere needs no label-complete history.
    """
    if training is None:
        training = will_train(settings, settings.retrain)
    previous = _previous_row_counts(settings, run_id, as_of)
    per_suite = {
        path.stem: {"previous_row_count": previous.get(path.stem, 0)}
        for path in _suites(settings, "marts")
    }
    params = {"as_of": pd.Timestamp(as_of), "previous_row_count": 0}
    skip = () if training else ("training",)
    results = _run_suites(settings, "marts", params, per_suite=per_suite, skip_when=skip)
    _report_gate(settings, run_id, results, as_of)
    return enforce_all(results)


def check_drift(settings: Settings, as_of: date, run_id: str | None = None) -> list[GateResult]:
    """PSI per champion feature, training rows vs the rows to score, through the drift suites.

    Training rows: active, label-complete snapshots in the champion's training window (all
    such rows when the window finds none), reduced to bins and counts kept in the model's
    registry folder at training (`keep_drift_references`; computed from the warehouse here
    for a model saved without them). No champion, or one that needs columns the marts no longer
    have (train_model replaces it in this run): nothing to compare, nothing checked.
    """
    from models.registry import champion_version, read_metadata

    version = champion_version(settings.registry)
    suites = _suites(settings, "drift")
    if version is None or not suites:
        log.info("drift check skipped: %s", "no champion model" if suites else "no drift suite")
        return []
    gone = _features_gone(settings, version)
    if gone:  # renamed or dropped in dbt: train_model replaces this champion
        log.warning(
            "drift check skipped: champion %s needs %s, no longer in marts.account_snapshots",
            version,
            ", ".join(gone),
        )
        return []
    meta = read_metadata(settings.registry, version)
    numeric, categorical = _model_features(meta)
    window = meta.get("training_window", {})
    with connect(
        settings.warehouse, read_only=True, memory_limit=settings.duckdb_memory_limit
    ) as con:
        cols = ", ".join(f'"{f}"' for f in [*numeric, *categorical]) or "1 as _row"
        base = f"select {cols} from marts.account_snapshots where is_active"
        score = con.execute(base + " and snapshot_date = ?", [as_of]).df()
        specs = [(path, load_suite(path).get("meta", {}).get("psi", {})) for path in suites]
        references = {
            bins: _drift_reference(settings, version, numeric, categorical, bins)
            or _keep_drift_reference(
                settings,
                version,
                _training_rows(
                    con.execute(
                        f"select snapshot_date, {cols} from marts.account_snapshots "
                        "where is_active and is_label_complete"
                    ).df(),
                    window,
                ),
                numeric,
                categorical,
                bins,
            )
            for bins in {int(psi.get("bins", 10)) for _, psi in specs}
        }
    params = {"as_of": pd.Timestamp(as_of), "model_version": version}
    results = []
    for path, psi in specs:
        frame = stability_against(
            references[int(psi.get("bins", 10))],
            score,
            numeric,
            categorical,
            epsilon=float(psi.get("epsilon", 1e-4)),
        )
        result = validate_frame(frame, path, parameters=params)
        result.preview = jsonable(frame.sort_values("psi", ascending=False).to_dict("records"))
        results.append(result)
    _report_gate(settings, run_id, results, as_of)
    return enforce_all(results)


# The training side of PSI (bins and counts per feature) is kept in the model's folder in the
# registry, written when the model is trained: a daily run reads only the rows it scores (at
# M the training rows were 2M rows and most of the 17 s this gate took), and a model copied
# to another warehouse (a champion trained elsewhere) brings its training distribution.


def _drift_reference_path(settings: Settings, version: str, bins: int) -> Path:
    from models.registry import model_dir

    return model_dir(settings.registry, version) / f"drift_reference_{bins}bins.json"


def _drift_reference(
    settings: Settings, version: str, numeric: list[str], categorical: list[str], bins: int
) -> dict[str, Any] | None:
    """The kept reference of `version`, if it covers these features."""
    path = _drift_reference_path(settings, version, bins)
    try:
        kept: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # none kept (a model saved before references were) or unreadable
    return kept if set(kept.get("features", {})) >= {*numeric, *categorical} else None


def _model_features(meta: dict[str, Any]) -> tuple[list[str], list[str]]:
    """A saved model's (numeric, categorical) features, from its metadata."""
    features = list(dict.fromkeys(meta["features"]))
    categorical = [f for f in meta.get("categorical_features", []) if f in features]
    return [f for f in features if f not in categorical], categorical


def _training_rows(frame: pd.DataFrame, window: dict[str, Any]) -> pd.DataFrame:
    """Rows of `frame` in the model's training window (all of them when it holds none)."""
    keep = pd.to_datetime(frame["snapshot_date"]).between(
        pd.Timestamp(window.get("start", "1900-01-01")),
        pd.Timestamp(window.get("end", "2999-12-31")),
    )
    return frame.loc[keep] if keep.any() else frame


def _keep_drift_reference(
    settings: Settings,
    version: str,
    train: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    bins: int,
) -> dict[str, Any]:
    ref = drift_reference(train, numeric, categorical, bins)
    write_atomic(_drift_reference_path(settings, version, bins), json.dumps(ref))
    return ref


def keep_drift_references(settings: Settings, version: str, snapshots: pd.DataFrame) -> None:
    """At training: the model's drift references, one per bin count the drift suites use."""
    from models.features import as_bool
    from models.registry import read_metadata

    suites = _suites(settings, "drift")
    if not suites:
        return
    meta = read_metadata(settings.registry, version)
    numeric, categorical = _model_features(meta)
    rows = snapshots.loc[
        as_bool(snapshots["is_active"], "is_active")
        & as_bool(snapshots["is_label_complete"], "is_label_complete")
    ]
    train = _training_rows(rows, meta.get("training_window", {}))
    for bins in {int(load_suite(p).get("meta", {}).get("psi", {}).get("bins", 10)) for p in suites}:
        _keep_drift_reference(settings, version, train, numeric, categorical, bins)


def validate_scores(
    settings: Settings,
    as_of: date | None = None,
    run_id: str | None = None,
    model_version: str | None = None,
) -> list[GateResult]:
    """The scored output before publishing: one score per active account, sane values, and
    reason codes that are features of the model that scored (default: the champion).

    `as_of` defaults to the date the scores in the warehouse are for."""
    from models.registry import champion_version, read_metadata

    version = model_version or champion_version(settings.registry)
    features = list(read_metadata(settings.registry, version)["features"]) if version else []
    with connect(
        settings.warehouse, read_only=True, memory_limit=settings.duckdb_memory_limit
    ) as con:
        if as_of is None:
            ((latest,),) = con.execute("select max(as_of) from scores.account_scores").fetchall()
            if latest is None:
                raise ValueError("scores.account_scores is empty: no scores to validate")
            as_of = latest
        ((active,),) = con.execute(
            "select count(*) from marts.account_snapshots where snapshot_date = ? and is_active",
            [as_of],
        ).fetchall()
    params = {
        "as_of": pd.Timestamp(as_of),
        "active_accounts": int(active),
        "model_versions": [version] if version else [],
        "model_features": features or [""],
    }
    results = _run_suites(settings, "scores", params)
    _report_gate(settings, run_id, results, as_of)
    return enforce_all(results)


# --- transform -----------------------------------------------------------------------------


def run_dbt_build(settings: Settings, as_of: date) -> DbtReport:
    """`dbt build` (seeds, models, tests, unit tests) in this process.

    By default through dbt's own `dbtRunner`; with `EXPANSION_DBT_NODE_TASKS=true` through
    prefect-dbt's `PrefectDbtRunner`, which shows one Prefect task per dbt node. That view
    costs about a minute per build on the demo project (218 nodes) and leaves DuckDB objects
    alive at interpreter exit, so it is opt-in.
    """
    args = dbt_args("build", settings, as_of)
    # Unit tests check SQL logic on fixed inputs, not the data: they run when the dbt project
    # (or dbt, DuckDB) changed since they last passed here, and on a full refresh.
    project = _dbt_project_hash(settings)
    passed = settings.home / "dbt" / "unit_tests_passed"
    skip_unit = not settings.full_refresh and passed.is_file() and passed.read_text() == project
    if skip_unit:
        args += ["--exclude", "test_type:unit"]
        log.info("dbt unit tests skipped: they passed on this dbt project (%s)", project[:12])
    crash_point("dbt.before_build")
    with dbt_env(settings):
        result = _invoke_dbt(settings, args)
    report = summarize(result)
    if not report.success:
        detail = "\n".join(report.failures) or str(getattr(result, "exception", "") or "")
        raise DbtBuildFailed(f"dbt build failed ({report.failed} nodes):\n{detail}")
    if not skip_unit:
        write_atomic(passed, project)
    crash_point("dbt.built")
    return report


def _dbt_project_hash(settings: Settings) -> str:
    """Every file of the dbt project (bar its build output) plus the dbt and DuckDB versions."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for name in ("dbt-core", "dbt-duckdb", "duckdb"):
        digest.update(f"{name}=={version(name)}\n".encode())
    root = settings.dbt_project
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if path.is_file() and parts[0] not in {"target", "logs", "dbt_packages"}:
            digest.update(f"{path.relative_to(root)}\n".encode())
            digest.update(path.read_bytes())
    # the profile too: a unit test runs on the target's adapter
    digest.update((settings.profiles / "profiles.yml").read_bytes())
    return digest.hexdigest()


MID_BUILD_NODE = "stg_usage__usage_daily"  # incremental: persisted, its marts not yet built


def _crash_mid_build(event: Any) -> None:
    """dbt event callback for the `dbt.mid_build` crash point."""
    if event.info.name != "NodeFinished":
        return
    node = getattr(event.data, "node_info", None)
    if node is not None and node.node_name == MID_BUILD_NODE and node.node_status == "success":
        crash_point("dbt.mid_build")


def _invoke_dbt(settings: Settings, args: list[str]) -> Any:
    if settings.dbt_node_tasks:
        from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

        runner = PrefectDbtRunner(
            settings=PrefectDbtSettings(
                project_dir=settings.dbt_project, profiles_dir=settings.profiles
            ),
            raise_on_failure=False,
        )
        return runner.invoke(args)
    from dbt.cli.main import dbtRunner

    if armed("dbt.mid_build"):
        return dbtRunner(callbacks=[_crash_mid_build]).invoke(args)
    return dbtRunner().invoke(args)


# --- model -----------------------------------------------------------------------------------


def code_version(settings: Settings) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(settings.project_dir), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import version

        return f"pkg-{version('expansion-pipeline')}"


class ModelQualityError(RuntimeError):
    """No model good enough to score with."""


def _write_model_metrics(settings: Settings) -> None:
    """scores.model_metrics: every registered model's backtest metrics, for BI and audits."""
    from models.registry import champion_version, list_models, read_metadata

    champion = champion_version(settings.registry)
    records: list[dict[str, Any]] = []
    for version in list_models(settings.registry)["version"]:
        meta = read_metadata(settings.registry, version)
        for r in meta.get("metrics", []):
            records.append(
                {
                    "model_version": version,
                    "is_champion": version == champion,
                    "trained_at": meta.get("trained_at"),
                    **{k: v for k, v in r.items() if not isinstance(v, dict | list)},
                }
            )
    frame = pd.DataFrame(records)
    if frame.empty:
        frame = pd.DataFrame(
            {"model_version": pd.Series(dtype=str), "is_champion": pd.Series(dtype=bool)}
        )
    with connect(settings.warehouse, memory_limit=settings.duckdb_memory_limit) as con:
        replace_table(con, "scores.model_metrics", frame)


def training_key(snapshots: pd.DataFrame, params: Params) -> str:
    """What a fit depends on: the snapshot rows, the parameters, the ML code and LightGBM."""
    import lightgbm

    import models

    digest = hashlib.sha256(data_fingerprint(snapshots).encode())
    digest.update(json.dumps(params.model_dump(mode="json"), sort_keys=True).encode())
    for source in sorted(Path(models.__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    digest.update(lightgbm.__version__.encode())
    return digest.hexdigest()[:24]


def _fit_or_reuse(settings: Settings, snapshots: pd.DataFrame, params: Params) -> tuple[str, bool]:
    """Fit and save a model, or reuse the saved one fitted from the same inputs (a cache keyed
    on `training_key`: a weekly retrain on unchanged data, or a backfill rerun, costs nothing).
    Returns the version and whether it was reused."""
    from flows.distributed import fit_model
    from models.registry import find_trained, save_model

    key = training_key(snapshots, params)
    if settings.dask_address:  # refitted on Dask: close to, not equal to, a local fit
        key += "-dask"
    cached = find_trained(settings.registry, key)
    if cached is not None:
        log.info("training inputs unchanged since model %s: reused, not refitted", cached)
        return cached, True
    log.debug("no model fitted from training key %s yet: fitting", key)
    model = fit_model(settings, snapshots, params)
    version = save_model(
        model,
        settings.registry,
        code_version=code_version(settings),
        data_fingerprint=data_fingerprint(snapshots),
        trained_at=datetime.now(UTC),
        training_key=key,
    )
    return version, False


def _features_gone(settings: Settings, version: str) -> list[str]:
    """The features of model `version` that marts.account_snapshots no longer has."""
    from models.registry import read_metadata

    with connect(
        settings.warehouse, read_only=True, memory_limit=settings.duckdb_memory_limit
    ) as con:
        have = _table_columns(con, "marts.account_snapshots")
    return [f for f in read_metadata(settings.registry, version)["features"] if f not in have]


def will_train(settings: Settings, force: bool) -> bool:
    """Whether `train_model` fits a model in this run: asked to, no champion, or a champion
    whose features left the marts."""
    from models.registry import champion_version

    champion = champion_version(settings.registry)
    return force or champion is None or bool(_features_gone(settings, champion))


def train_model(settings: Settings, as_of: date, *, force: bool = False) -> dict[str, Any]:
    """Train a challenger when there is no champion (or when asked) and promote it if it wins."""
    from models.promotion import comparable_metrics, should_promote
    from models.registry import champion_version, load_model, promote

    params = model_params(settings)
    champion = champion_version(settings.registry)
    out: dict[str, Any] = {"champion_version": champion, "trained_version": None}
    # A champion that needs columns the marts no longer have (a feature renamed or dropped in
    # dbt) cannot score: train a replacement, judged on the quality bars alone.
    gone = _features_gone(settings, champion) if champion else []
    if gone:
        log.warning(
            "champion %s needs %s, no longer in marts.account_snapshots: training a replacement",
            champion,
            ", ".join(gone),
        )
        out["stale_champion"] = {"version": champion, "features_gone": gone}
    if champion and not force and not gone:
        out["decision"] = "champion reused (no retrain asked)"
        _write_model_metrics(settings)
        return out

    snapshots = read_frame(
        settings.warehouse,
        "select * from marts.account_snapshots where snapshot_date <= ?",
        [as_of],
    )
    version, reused = _fit_or_reuse(settings, snapshots, params)
    if not reused:
        keep_drift_references(settings, version, snapshots)
    crash_point("train.saved")
    out["trained_version"] = version
    out["reused"] = reused
    if version == champion:
        out["decision"] = "the champion was trained on these very inputs: kept"
        _write_model_metrics(settings)
        return out
    model = load_model(settings.registry, version)
    mine: dict[str, Any] = {}
    if champion and not gone:
        mine, theirs = comparable_metrics(model, load_model(settings.registry, champion), snapshots)
        promoted, reason = should_promote(mine, theirs, params)
    else:
        latest = model.latest_cutoff()
        mine = (model.metrics_at(latest) if latest else None) or {}
        promoted, reason = should_promote(mine, None, params)
    out["decision"] = reason
    out["challenger_metrics"] = (
        {k: mine.get(k) for k in ("cutoff", "roc_auc", "pr_auc", "brier", "lift_top_decile")}
        if mine
        else {}
    )
    if promoted:
        promote(settings.registry, version)
        crash_point("train.promoted")
        out["champion_version"] = version
    elif champion is None or gone:
        where = settings.params_path or "models/params.yaml"
        raise ModelQualityError(
            (
                f"no champion model, and the first trained model {version}"
                if champion is None
                else f"champion {champion} cannot score (needs {', '.join(gone)}, no longer in "
                f"marts.account_snapshots), and its replacement {version}"
            )
            + f" does not pass the quality bars in {where}: {reason}"
        )
    log.info("model %s: %s", version, reason)
    _write_model_metrics(settings)
    return out


def train_as_of(settings: Settings, as_of: date) -> str:
    """A model that knows only what was known at as_of, for backfilling that date.

    It trains on snapshots whose labels were complete by as_of, is saved in the registry like
    any model (so its window and metrics can be inspected) and is never promoted. Rerunning
    the backfill of a date reuses it (same inputs, same model).
    """
    snapshots = read_frame(
        settings.warehouse,
        "select * from marts.account_snapshots where snapshot_date <= ?",
        [as_of],
    )
    version, _ = _fit_or_reuse(settings, snapshots, model_params(settings))
    return version


def score_accounts(
    settings: Settings,
    as_of: date,
    run_id: str,
    *,
    model_version: str | None = None,
    backfill: bool = False,
) -> dict[str, Any]:
    """Score every active account at as_of (with the champion unless a version is given).

    scores.account_scores holds this run's scores; scores.account_score_history keeps one row
    per account per as_of date (re-scoring a date replaces that date's rows, nothing else).
    """
    from flows.distributed import score_frame
    from models.registry import champion_version, load_model

    params = model_params(settings)
    version = model_version or champion_version(settings.registry)
    if version is None:
        raise ModelQualityError(f"no champion model in {settings.registry}: train one first")
    model = load_model(settings.registry, version)
    snapshots = read_frame(
        settings.warehouse, "select * from marts.account_snapshots where snapshot_date = ?", [as_of]
    )
    accounts = read_frame(
        settings.warehouse,
        "select account_id, account_name, owner_name, segment from marts.accounts",
    )
    scores = score_frame(
        settings,
        model,
        snapshots,
        as_of,
        params,
        owners=accounts.set_index("account_id")["owner_name"],
    )
    scores = scores.merge(accounts, on="account_id", how="left", validate="one_to_one")
    scores["scored_at"] = datetime.now(UTC).replace(tzinfo=None)
    scores["run_id"] = run_id
    with connect(settings.warehouse, memory_limit=settings.duckdb_memory_limit) as con:
        con.execute("begin transaction")
        replace_table(con, "scores.account_scores", scores)
        con.execute(
            "create table if not exists scores.account_score_history as "
            "select * from scores.account_scores limit 0"
        )
        for column, type_ in con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'scores' and table_name = 'account_scores'"
        ).fetchall():  # columns added by a newer model version
            con.execute(
                f'alter table scores.account_score_history add column if not exists "{column}" {type_}'
            )
        con.execute("delete from scores.account_score_history where as_of = ?", [as_of])
        con.execute(
            "insert into scores.account_score_history by name select * from scores.account_scores"
        )
        con.execute("commit")
    crash_point("score.written")
    alerts = 0 if backfill else record_alerts(settings, run_id)
    top = scores[scores["action_rank"].notna()].sort_values("action_rank").head(10)
    columns = [
        "account_id",
        "account_name",
        "p_expansion",
        "next_best_offer",
        "touch_tier",
        "reason_1",
        "reason_2",
        "reason_3",
    ]
    report = write_model_report(settings, model, snapshots, scores)
    return {
        "report": str(report),
        "alerts": alerts,
        "accounts_scored": len(scores),
        "model_version": version,
        "top_accounts": top[columns]
        .astype(object)
        .where(top[columns].notna(), None)
        .to_dict("records"),
    }


def write_model_report(
    settings: Settings,
    model: Any,
    snapshots: pd.DataFrame,
    scores: pd.DataFrame,
    oracle: pd.DataFrame | None = None,
) -> Path:
    """The model report (one offline HTML page) for the scored model: <home>/reports/."""
    from models.report import render_report

    out = settings.home / "reports" / f"model_{model.version}.html"
    charts = JsonFileCache(settings.home / "reports" / ".charts")
    return write_atomic(out, render_report(model, snapshots, scores, oracle, chart_cache=charts))


TIER_RANK = "case touch_tier when 'high_touch' then 3 when 'low_touch' then 2 else 1 end"


def record_alerts(settings: Settings, run_id: str) -> int:
    """Alerts on change since the previous scoring run: the touch tier moved up, or the
    expansion probability rose past `alert_probability_threshold`. Appended to
    scores.account_alerts (published, and synced as CRM tasks by config/syncs.yml)."""
    threshold = settings.alert_probability_threshold
    with connect(settings.warehouse, memory_limit=settings.duckdb_memory_limit) as con:
        con.execute(
            """
            create table if not exists scores.account_alerts (
                alert_id varchar, run_id varchar, as_of date, account_id varchar,
                account_name varchar, owner_name varchar, alert_type varchar,
                previous_value varchar, current_value varchar, p_expansion double,
                next_best_offer varchar, reason_1 varchar, created_at timestamp
            )
            """
        )
        previous = con.execute(
            "select run_id from scores.account_score_history where run_id <> ? "
            "order by scored_at desc limit 1",
            [run_id],
        ).fetchone()
        if previous is None:
            return 0
        # An alert is identified by its date, account and type, and re-scoring a date
        # replaces that date's alerts: a rerun (after a crash, say) sends no second task.
        con.execute(
            "delete from scores.account_alerts where as_of in "
            "(select distinct as_of from scores.account_scores)"
        )
        con.execute(
            f"""
            insert into scores.account_alerts
            with now_ as (select *, {TIER_RANK} as tier_rank from scores.account_scores),
            before as (
                select account_id, touch_tier, p_expansion, {TIER_RANK} as tier_rank
                from scores.account_score_history where run_id = $previous
            ),
            changes as (
                select n.*, 'tier_up' as alert_type, b.touch_tier as previous_value,
                       n.touch_tier as current_value
                from now_ n join before b using (account_id)
                where n.tier_rank > b.tier_rank
                union all
                select n.*, 'probability_crossed', cast(round(b.p_expansion, 3) as varchar),
                       cast(round(n.p_expansion, 3) as varchar)
                from now_ n join before b using (account_id)
                where b.p_expansion < $threshold and n.p_expansion >= $threshold
            )
            select md5(concat_ws('|', cast(as_of as varchar), account_id, alert_type)),
                   $run_id, as_of,
                   account_id, account_name, owner_name, alert_type, previous_value,
                   current_value, p_expansion, next_best_offer, reason_1, current_timestamp
            from changes where not is_suppressed
            """,
            {"previous": previous[0], "threshold": threshold, "run_id": run_id},
        )
        row = con.execute(
            "select count(*) from scores.account_alerts where run_id = ?", [run_id]
        ).fetchone()
    return int(row[0]) if row else 0


def write_run_record(settings: Settings, record: dict[str, Any]) -> Path:
    path = settings.runs_dir / f"{record['run_id']}.json"
    return write_atomic(path, json.dumps(record, indent=2, default=str))


# --- publish and sync ------------------------------------------------------------------------


def publish(
    settings: Settings, run_id: str, as_of: date, model_version: str, *, history_only: bool = False
) -> PublishReport:
    return publish_serving(
        settings.warehouse,
        settings.serving,
        run_id,
        as_of.isoformat(),
        model_version,
        history_only=history_only,
    )


def sync(settings: Settings, run_id: str, *, dry_run: bool = False) -> list[SyncReport]:
    """Every sync in config/syncs.yml; a destination that fails does not stop the others."""
    specs = load_syncs(settings.syncs_file)
    reports, errors = [], []
    for spec in specs:
        try:
            reports.append(
                run_sync(
                    spec,
                    settings.serving_db,
                    settings.warehouse,
                    settings.sync,
                    run_id,
                    dry_run=dry_run,
                )
            )
        except SyncFailed as exc:
            errors.append(str(exc))
    if errors:
        raise SyncFailed("; ".join(errors))
    return reports
