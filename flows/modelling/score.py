"""The score stage: the champion scores every active account at as_of; scores and their
history are written to the warehouse, alerts on change recorded, and the model report
rendered."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from flows import schemas, tracking
from flows.errors import ModelQualityError
from flows.faults import crash_point
from flows.files import JsonFileCache, write_atomic
from flows.modelling.distributed import score_frame
from flows.registry import champion_version, load_model, model_dir
from flows.settings import Settings
from flows.transform.manifest import FEATURES_TABLE, model_params
from flows.warehouse import Connection, Warehouse, table_columns
from models.alerts import CURRENT_COLUMNS, PREVIOUS_COLUMNS, alerts_on_change
from models.report import render_report

log = logging.getLogger(__name__)

TOP_ACCOUNTS_SHOWN = 10
TOP_ACCOUNT_COLUMNS = [
    "account_id",
    "account_name",
    "p_expansion",
    "next_best_offer",
    "touch_tier",
    "reason_1",
    "reason_2",
    "reason_3",
]


@dataclass
class ScoreResult:
    """What the score stage wrote: how many accounts, with which model, and the top of the list."""

    model_version: str
    accounts_scored: int
    alerts: int
    report: str
    top_accounts: list[dict[str, Any]] = field(default_factory=list)


def score_accounts(
    settings: Settings,
    as_of: date,
    run_id: str,
    *,
    model_version: str | None = None,
    backfill: bool = False,
) -> ScoreResult:
    """Score every active account at as_of (with the champion unless a version is given).

    scores.account_scores holds this run's scores; scores.account_score_history keeps one row
    per account per as_of date (re-scoring a date replaces that date's rows, nothing else).
    """
    params = model_params(settings)
    version = model_version or champion_version(settings.registry)
    if version is None:
        raise ModelQualityError(f"no champion model in {settings.registry}: train one first")
    model = load_model(settings.registry, version)
    snapshots = Warehouse.from_settings(settings).read_frame(
        f"select * from {FEATURES_TABLE} where snapshot_date = ?", [as_of]
    )
    accounts = Warehouse.from_settings(settings).read_frame(
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
    with Warehouse.from_settings(settings).connect() as con:
        write_scores(con, scores, as_of)
    crash_point("score.written")
    alerts = 0 if backfill else record_alerts(settings, run_id)
    top = scores[scores["action_rank"].notna()].sort_values("action_rank")
    top = top.head(TOP_ACCOUNTS_SHOWN)[TOP_ACCOUNT_COLUMNS]
    report = write_model_report(settings, model, snapshots, scores)
    return ScoreResult(
        model_version=version,
        accounts_scored=len(scores),
        alerts=alerts,
        report=str(report),
        top_accounts=[
            {str(k): v for k, v in row.items()}
            for row in top.astype(object).where(top.notna(), None).to_dict("records")
        ],
    )


def write_scores(con: Connection, scores: pd.DataFrame, as_of: date) -> None:
    """scores.account_scores holds this run's scores; scores.account_score_history keeps one
    row per account per as_of (re-scoring a date replaces that date's rows). One transaction.

    Both tables have the declared columns and types of `flows.schemas.SCORE_COLUMNS`, whatever
    the values of a date (a text column with no value on the first date is still VARCHAR).
    A history written before a column was renamed or typed is brought up to date first."""
    unknown = sorted(set(scores.columns) - set(schemas.SCORE_COLUMNS))
    missing = sorted(set(schemas.SCORE_COLUMNS) - set(scores.columns))
    if unknown or missing:
        raise ValueError(
            f"scores to write do not match flows/schemas.py SCORE_COLUMNS: unknown {unknown}, "
            f"missing {missing}"
        )
    con.execute("begin transaction")
    try:
        _upgrade_history(con)
        schemas.ensure(con, "scores.account_scores", "scores.account_score_history")
        con.register("_scores", scores)
        select = ", ".join(f'cast("{c}" as {t}) as "{c}"' for c, t in schemas.SCORE_COLUMNS.items())
        con.execute("delete from scores.account_scores")
        con.execute(f"insert into scores.account_scores by name select {select} from _scores")
        con.execute("delete from scores.account_score_history where as_of = ?", [as_of])
        con.execute(
            "insert into scores.account_score_history by name select * from scores.account_scores"
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_scores")


def _upgrade_history(con: Connection) -> None:
    """Score tables from before: renamed columns take their new names (their amounts were in
    USD, which their rows' reporting_currency then says), and columns typed from a frame (NULL
    when a first date had no value, BIGINT for an integer) take their declared type."""
    for table in ("scores.account_scores", "scores.account_score_history"):
        have = table_columns(con, table)
        if not have:
            continue
        renamed = [
            (o, n) for o, n in schemas.RENAMED_SCORE_COLUMNS.items() if o in have and n not in have
        ]
        for old, new in renamed:
            con.execute(f'alter table {table} rename column "{old}" to "{new}"')
        if renamed and "reporting_currency" not in have:
            con.execute(f"alter table {table} add column reporting_currency varchar")
            con.execute(f"update {table} set reporting_currency = 'USD'")
        for column, type_ in table_columns(con, table).items():
            declared = schemas.SCORE_COLUMNS.get(column)
            if declared and type_.lower() != declared:
                con.execute(f'alter table {table} alter column "{column}" type {declared}')


def write_model_report(
    settings: Settings,
    model: Any,
    snapshots: pd.DataFrame,
    scores: pd.DataFrame,
    oracle: pd.DataFrame | None = None,
) -> Path:
    """The model report (one offline HTML page) for the scored model: <home>/reports/ (and
    the model's MLflow run, when MLFLOW_TRACKING_URI is set)."""
    out = settings.home / "reports" / f"model_{model.version}.html"
    charts = JsonFileCache(settings.home / "reports" / ".charts")
    page = render_report(
        model,
        snapshots,
        scores,
        oracle,
        chart_cache=charts,
        locale=settings.locale,
        currency=settings.reporting_currency,
    )
    written = write_atomic(out, page)
    if tracking.tracking_uri() and model.version:
        tracking.log_report(model_dir(settings.registry, model.version), written)
    return written


def record_alerts(settings: Settings, run_id: str) -> int:
    """Alerts on change since the previous scoring run (the rule: `models.alerts`): the touch
    tier moved up, or the expansion probability rose past `alert_probability_threshold`.
    Appended to scores.account_alerts (published, and synced as CRM tasks by
    config/syncs.yml). Returns how many this run raised."""
    touch_tiers = model_params(settings).touch_tiers
    with Warehouse.from_settings(settings).connect() as con:
        schemas.ensure(con, "scores.account_alerts")
        previous = con.execute(
            # the latest run of this as_of or an earlier one: a backfill (or a past-date run,
            # which is one) scored later but of an earlier date is not "the last run"
            "select run_id from scores.account_score_history where run_id <> ? "
            "and as_of <= (select max(as_of) from scores.account_scores) "
            "order by as_of desc, scored_at desc limit 1",
            [run_id],
        ).fetchone()
        if previous is None:
            return 0
        current = con.execute(
            f"select {', '.join(CURRENT_COLUMNS)} from scores.account_scores"
        ).df()
        before = con.execute(
            f"select {', '.join(PREVIOUS_COLUMNS)} from scores.account_score_history "
            "where run_id = ?",
            [previous[0]],
        ).df()
        alerts = alerts_on_change(
            current, before, settings.alert_probability_threshold, touch_tiers=touch_tiers
        )
        alerts["run_id"] = run_id
        alerts["created_at"] = datetime.now(UTC).replace(tzinfo=None)
        # An alert is identified by its date, account and type, and re-scoring a date
        # replaces that date's alerts: a rerun (after a crash, say) sends no second task.
        con.execute("begin transaction")
        con.execute(
            "delete from scores.account_alerts where as_of in "
            "(select distinct as_of from scores.account_scores)"
        )
        con.register("_alerts", alerts)
        con.execute("insert into scores.account_alerts by name select * from _alerts")
        con.unregister("_alerts")
        con.execute("commit")
        row = con.execute(
            "select count(*) from scores.account_alerts where run_id = ?", [run_id]
        ).fetchone()
    return int(row[0]) if row else 0
