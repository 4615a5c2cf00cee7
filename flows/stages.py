"""What each pipeline stage does, as plain functions of the settings.

`flows/pipeline.py` wraps these in Prefect tasks; the CLI and tests may call them directly.
This module (with `flows/load.py`, `flows/publish.py`, `flows/sync.py`) is where connections
are opened; `models/` stays pure.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from flows.load import ExtractError, LoadReport, load_sources, unload_run
from flows.publish import PublishReport
from flows.publish import publish as publish_serving
from flows.settings import Settings
from flows.sources import load_sources_config
from flows.sync import SyncFailed, SyncReport, load_syncs, run_sync
from flows.transform import DbtBuildFailed, DbtReport, dbt_args, dbt_env, summarize
from flows.validate import GateFailed, GateResult, validate_frame
from flows.warehouse import connect, latest_data_date, read_frame, replace_table

__all__ = [
    "DbtReport",
    "ExtractError",
    "GateResult",
    "LoadReport",
    "PublishReport",
    "SyncReport",
]

log = logging.getLogger(__name__)


class PipelineBusy(RuntimeError):
    """Another run holds the pipeline lock."""


@contextmanager
def pipeline_lock(settings: Settings) -> Iterator[None]:
    """One writer at a time: a non-blocking exclusive lock on `<home>/pipeline.lock`."""
    settings.home.mkdir(parents=True, exist_ok=True)
    path = settings.home / "pipeline.lock"
    fh = path.open("a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise PipelineBusy(
                f"another pipeline run holds {path} ({holder}); wait for it to finish"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}")
        fh.flush()
        yield
    finally:
        fh.close()


# --- load ----------------------------------------------------------------------------------


def load_raw(settings: Settings, run_id: str) -> LoadReport:
    """Pull what is new from every source in config/sources.yml and append it to raw."""
    config = load_sources_config(settings.sources_file, settings.landing_dir)
    return load_sources(
        config,
        settings.warehouse,
        run_id,
        full_refresh=settings.full_refresh,
        memory_limit=settings.duckdb_memory_limit,
        staging_dir=settings.home / "extracts",
    )


class SourceStale(RuntimeError):
    """A source has not delivered within its freshness window (dbt source freshness)."""


def check_freshness(settings: Settings) -> list[dict[str, Any]]:
    """`dbt source freshness` on the raw tables; error_after fails the run when enforced."""
    if settings.freshness == "off":
        return []
    from dbt.cli.main import dbtRunner

    args = [
        "source",
        "freshness",
        "--project-dir",
        str(settings.dbt_project),
        "--profiles-dir",
        str(settings.profiles),
        "--target",
        settings.target,
        "--target-path",
        str(settings.home / "dbt" / "target"),
        "--log-path",
        str(settings.home / "dbt" / "logs"),
        "--output",
        str(settings.home / "dbt" / "target" / "sources.json"),
    ]
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


def _suites(settings: Settings, edge: str) -> list[Path]:
    out = []
    for path in sorted(settings.expectations.glob("*.json")):
        meta = json.loads(path.read_text()).get("meta", {})
        if meta.get("edge") == edge:
            out.append(path)
    return out


def _enforce_all(results: list[GateResult]) -> list[GateResult]:
    for r in results:
        if not r.passed:
            raise GateFailed(r)
    return results


def validate_raw(settings: Settings, run_id: str) -> list[GateResult]:
    """Check the rows this run loaded into raw (earlier loads were checked when they came).

    On a critical failure the run's rows are taken back out of raw, so the bad files are
    checked again next run instead of flowing silently into the marts.
    """
    results = []
    for suite in _suites(settings, "raw"):
        table = json.loads(suite.read_text())["meta"]["table"]
        frame = read_frame(settings.warehouse, f"select * from {table} where _run_id = ?", [run_id])
        if frame.empty:
            continue
        results.append(validate_frame(frame, suite, table))
    try:
        return _enforce_all(results)
    except GateFailed:
        unload_run(settings.warehouse, run_id)
        raise


def validate_marts(settings: Settings, as_of: date) -> list[GateResult]:
    snapshots = read_frame(settings.warehouse, "select * from marts.account_snapshots")
    training = snapshots[
        snapshots["is_active"].fillna(False) & snapshots["is_label_complete"].fillna(False)
    ]
    accounts = read_frame(settings.warehouse, "select * from marts.accounts")
    frames = {
        "marts_accounts": accounts,
        "marts_account_snapshots": snapshots,
        "marts_account_snapshots_training": training.astype({"label_expansion": "float64"}),
    }
    params = {"as_of": pd.Timestamp(as_of)}
    results = []
    for suite in _suites(settings, "marts"):
        results.append(validate_frame(frames[suite.stem], suite, parameters=params))
    return _enforce_all(results)


def validate_scores(settings: Settings) -> list[GateResult]:
    scores = read_frame(settings.warehouse, "select * from scores.account_scores")
    return _enforce_all([validate_frame(scores, suite) for suite in _suites(settings, "scores")])


# --- transform -----------------------------------------------------------------------------


def run_dbt_build(settings: Settings, as_of: date) -> DbtReport:
    """`dbt build` (seeds, models, tests, unit tests) in this process.

    By default through dbt's own `dbtRunner`; with `EXPANSION_DBT_NODE_TASKS=true` through
    prefect-dbt's `PrefectDbtRunner`, which shows one Prefect task per dbt node. That view
    costs about a minute per build on the demo project (218 nodes) and leaves DuckDB objects
    alive at interpreter exit, so it is opt-in.
    """
    args = dbt_args("build", settings, as_of)
    with dbt_env(settings):
        result = _invoke_dbt(settings, args)
    report = summarize(result)
    if not report.success:
        detail = "\n".join(report.failures) or str(getattr(result, "exception", "") or "")
        raise DbtBuildFailed(f"dbt build failed ({report.failed} nodes):\n{detail}")
    return report


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


def data_fingerprint(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


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


def train_model(settings: Settings, as_of: date, *, force: bool = False) -> dict[str, Any]:
    """Train a challenger when there is no champion (or when asked) and promote it if it wins."""
    from models.params import load_params
    from models.registry import champion_version, load_model, promote, save_model, should_promote
    from models.train import comparable_metrics
    from models.train import train_model as fit

    params = load_params()
    champion = champion_version(settings.registry)
    out: dict[str, Any] = {"champion_version": champion, "trained_version": None}
    if champion and not force:
        out["decision"] = "champion reused (no retrain asked)"
        _write_model_metrics(settings)
        return out

    snapshots = read_frame(
        settings.warehouse,
        "select * from marts.account_snapshots where snapshot_date <= ?",
        [as_of],
    )
    model = fit(snapshots, params)
    version = save_model(
        model,
        settings.registry,
        code_version=code_version(settings),
        data_fingerprint=data_fingerprint(snapshots),
        trained_at=datetime.now(UTC),
    )
    out["trained_version"] = version
    mine: dict[str, Any] = {}
    if champion:
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
        out["champion_version"] = version
    elif champion is None:
        raise ModelQualityError(
            f"no champion model, and the first trained model {version} does not pass the "
            f"quality bars in models/params.yaml: {reason}"
        )
    log.info("model %s: %s", version, reason)
    _write_model_metrics(settings)
    return out


def score_accounts(settings: Settings, as_of: date, run_id: str) -> dict[str, Any]:
    """Score every active account at as_of with the champion; keep history per run."""
    from models.params import load_params
    from models.registry import champion_version, load_model
    from models.score import score_accounts as score

    params = load_params()
    version = champion_version(settings.registry)
    if version is None:
        raise ModelQualityError(f"no champion model in {settings.registry}: train one first")
    model = load_model(settings.registry, version)
    snapshots = read_frame(
        settings.warehouse, "select * from marts.account_snapshots where snapshot_date = ?", [as_of]
    )
    scores = score(model, snapshots, as_of, params, reasons_for_top_n=settings.reasons_top_n)
    accounts = read_frame(
        settings.warehouse,
        "select account_id, account_name, owner_name, segment from marts.accounts",
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
        con.execute("delete from scores.account_score_history where run_id = ?", [run_id])
        con.execute(
            "insert into scores.account_score_history by name select * from scores.account_scores"
        )
        con.execute("commit")
    alerts = record_alerts(settings, run_id)
    top = scores.loc[~scores["is_suppressed"]].head(10)
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
    return {
        "alerts": alerts,
        "accounts_scored": len(scores),
        "model_version": version,
        "top_accounts": top[columns]
        .astype(object)
        .where(top[columns].notna(), None)
        .to_dict("records"),
    }


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
        con.execute("delete from scores.account_alerts where run_id = ?", [run_id])
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
            select md5(concat_ws('|', $run_id, account_id, alert_type)), $run_id, as_of,
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
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    path = settings.runs_dir / f"{record['run_id']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, path)
    return path


# --- publish and sync ------------------------------------------------------------------------


def publish(settings: Settings, run_id: str, as_of: date, model_version: str) -> PublishReport:
    return publish_serving(
        settings.warehouse, settings.serving, run_id, as_of.isoformat(), model_version
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
