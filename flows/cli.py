"""`expansion`: the command line for the expansion pipeline."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flows.errors import (
    EXIT_BAD_INPUT,
    EXIT_PARTIAL,
    EXIT_USAGE,
    ExtractError,
    exit_code,
)
from flows.settings import Settings, get_settings

app = typer.Typer(
    help="Predict which customer accounts will expand, and tell sales whom to approach.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

AsOf = Annotated[
    datetime | None,
    typer.Option(formats=["%Y-%m-%d"], help="Score as of this date (default: latest data)."),
]


def _configure(settings: Settings) -> Settings:
    """Process defaults for Prefect, logging and secrets (creates `<home>/prefect`), and the
    guard that stops the temporary Prefect server with this process (`flows.run.server`)."""
    from flows import prefect_env

    prefect_env.configure(
        settings.home, log_level=settings.log_level, secrets_dir=settings.secrets_dir
    )
    from flows.run import server

    server.guard()  # the temporary Prefect server dies with this process; orphans are reaped
    return settings


def _settings(**overrides: Any) -> Settings:
    return _configure(get_settings(**overrides))


@app.command("demo-data")
def demo_data(
    accounts: Annotated[int, typer.Option(help="Number of customer accounts.")] = 1000,
    months: Annotated[int, typer.Option(help="Months of history.")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 42,
    out: Annotated[Path | None, typer.Option(help="Landing directory (default: settings).")] = None,
    oracle_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="EXPANSION_ORACLE_DIR",
            help="Where the generator's true probabilities go (default: <landing>/../oracle).",
        ),
    ] = None,
    skip_if_present: Annotated[
        bool, typer.Option(help="Do nothing when the landing zone already holds files.")
    ] = False,
    business: Annotated[
        str,
        typer.Option(
            help="Which demo business: per_seat (a CRM sold per seat, the default) or "
            "flat_tiers (flat-priced tiers with bundled limits, mixed terms, JPY)."
        ),
    ] = "per_seat",
) -> None:
    """Write realistic CRM, billing and usage extracts (and the oracle) for a demo.

    The only command that makes data up: `expansion run` never does."""
    from flows.ingest.landing import has_file

    settings = get_settings(landing_dir=out)
    landing = settings.landing_dir
    if skip_if_present and has_file(landing):
        console.print(f"landing zone {landing} already holds extracts: no demo data written")
        return
    from demo.generator import BUSINESSES, generate

    if business not in BUSINESSES:
        raise typer.BadParameter(
            f"unknown demo business {business!r}; known: {', '.join(BUSINESSES)}",
            param_hint="--business",
        )
    oracle = (oracle_dir or landing.parent / "oracle").expanduser().resolve()
    with console.status(
        f"generating demo extracts ({business}): {accounts} accounts x {months} months"
    ):
        summary = generate(
            landing, oracle, accounts=accounts, months=months, seed=seed, business=business
        )
    console.print(
        f"[green]demo extracts written[/] to {landing} (oracle: {oracle}); "
        f"base rate {summary.base_rate:.1%}, oracle ROC AUC {summary.oracle_auc:.3f}"
    )
    declared = (settings.project_dir / BUSINESSES[business].config).resolve()
    if declared != settings.business_file:
        console.print(
            f"its metrics are declared in {declared}: run the pipeline with "
            f"EXPANSION_BUSINESS_CONFIG={declared} (now {settings.business_file})"
        )


@app.command()
def run(
    as_of: AsOf = None,
    retrain: Annotated[
        bool, typer.Option(help="Train a challenger even if a champion exists.")
    ] = False,
    full_refresh: Annotated[
        bool, typer.Option(help="Reload every extract from scratch (raw and ledger rebuilt).")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the run summary as JSON.")
    ] = False,
) -> None:
    """Run the whole pipeline once: load, dbt build, gates, train, score, publish, sync."""
    from flows.ingest.landing import check_landing_zone

    settings = get_settings()
    _guarded(lambda: check_landing_zone(settings))  # before anything is written, Prefect's too
    _configure(settings)
    _guarded(lambda: _secrets(settings))  # reads each named secret: masked from now on
    from flows.pipeline import expansion_pipeline
    from flows.run.private import serving_readable

    try:
        summary = _guarded(
            lambda: expansion_pipeline(
                as_of=as_of.date() if as_of else None, retrain=retrain, full_refresh=full_refresh
            )
        )
    finally:  # the process umask is 077 (private state); serving is for BI, readable
        serving_readable(settings)
    if json_out:
        print(json.dumps(summary, default=str, indent=2))
    else:
        _print_summary(settings, summary)
    if summary["status"] != "completed":
        raise typer.Exit(EXIT_PARTIAL)


def _print_summary(settings: Settings, summary: dict[str, Any]) -> None:
    stages = Table(title=f"run {summary['run_id']} as of {summary['as_of']}: {summary['status']}")
    stages.add_column("stage")
    stages.add_column("seconds", justify="right")
    for name, seconds in summary["stages"].items():
        stages.add_row(name, f"{seconds:.1f}")
    console.print(stages)
    for note in summary.get("notes") or []:  # e.g. a past as_of: history only, nothing synced
        console.print(f"[yellow]{escape(note)}[/]")
    model = summary.get("model") or {}
    console.print(
        f"model [bold]{model.get('champion_version')}[/] "
        f"({'trained this run' if model.get('trained_version') else 'reused'}); "
        f"{summary['accounts_scored']} accounts scored"
    )
    gates = summary.get("gates") or []
    if gates:
        table = Table(title="data-quality gates")
        for col in ("suite", "table", "rows", "status", "warnings"):
            table.add_column(col)
        for g in gates:
            table.add_row(
                g["suite"],
                g["table"],
                str(g["rows"]),
                g.get("status", ""),
                "; ".join(g["warnings"][:3]) + (" ..." if len(g["warnings"]) > 3 else ""),
            )
        console.print(table)
        docs = next((g.get("data_docs") for g in gates if g.get("data_docs")), None)
        if docs:
            console.print(f"data docs: {docs}")
    quarantined = summary.get("rows_quarantined") or {}
    if quarantined:
        console.print(
            f"[yellow]quarantined rows[/] (see raw._quarantine in the warehouse): {quarantined}"
        )
    for f in summary.get("freshness") or []:
        if f["status"] != "pass":
            console.print(
                f"[yellow]source {f['source']} freshness {f['status']}[/] ({f['age_hours']} h)"
            )
    for s in summary.get("synced", []):
        console.print(
            f"sync {s['name']} ({s['status']}): {s['inserted']} inserted, {s['updated']} updated, "
            f"{s['deleted']} deleted, {s['failed']} failed -> "
            f"{', '.join(s['files']) or 'nothing new to send'}"
        )
    console.print(
        f"\nscored tables: [bold]{settings.serving_db}[/] (tables account_scores, "
        f"account_score_history, accounts, contracts, mrr_movements, ...)"
    )
    console.print(f"parquet copies: {settings.serving / 'parquet' / 'current'}")
    if summary.get("report"):
        console.print(f"model report: {summary['report']}")
    top = Table(title="top accounts to approach")
    for col in ("account", "p(expansion)", "offer", "tier", "why"):
        top.add_column(col)
    for row in summary.get("top_accounts", []):
        top.add_row(
            f"{row.get('account_name') or ''} ({row['account_id']})",
            f"{row['p_expansion']:.2f}",
            str(row.get("next_best_offer") or ""),
            str(row.get("touch_tier") or ""),
            "; ".join(
                str(r) for r in (row.get("reason_1"), row.get("reason_2"), row.get("reason_3")) if r
            ),
        )
    console.print(top)


@app.command()
def sync(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Only these syncs of config/syncs.yml (default: every one)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Try each destination (connect, check the table or endpoint) and show what "
            "would be sent: counts per action and the first records. Sends nothing."
        ),
    ] = False,
    full_resync: Annotated[
        bool,
        typer.Option(
            help="Send every record of the current publication again, whatever the ledger "
            "says was sent (restores records deleted or edited at the destination)."
        ),
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            help="Seconds to wait for a running pipeline run (which syncs itself) to finish; "
            "then exit 5. 0: exit 5 at once."
        ),
    ] = 600,
) -> None:
    """Send changed scores from the serving file to the destinations in config/syncs.yml.

    Takes the pipeline lock (one writer of the warehouse and the sync ledger at a time):
    while a run holds it, waits up to --wait seconds. Exits 7 when a destination rejected a
    record, could not be reached, or (--dry-run) failed its check."""
    from flows.delivery.sync import sync_all
    from flows.delivery.sync_config import load_syncs
    from flows.run.lock import pipeline_lock

    settings = _settings()
    run_id = _manual_run_id()
    if names:
        known = {s.name for s in _guarded(lambda: load_syncs(settings.syncs_file))}
        unknown = [n for n in names if n not in known]
        if unknown:
            err.print(
                f"[red]no sync named {', '.join(unknown)}[/] in {settings.syncs_file} "
                f"(syncs: {', '.join(sorted(known))})"
            )
            raise typer.Exit(EXIT_USAGE)

    def call() -> Any:
        with pipeline_lock(settings, wait=wait, holder=f"expansion sync {run_id}"):
            if not settings.serving_db.exists():
                return None
            return sync_all(settings, run_id, dry_run=dry_run, full_resync=full_resync, names=names)

    reports = _guarded(call, run_id)
    if reports is None:
        err.print(f"[red]nothing published yet[/]: {settings.serving_db} does not exist")
        raise typer.Exit(EXIT_BAD_INPUT)
    for r in reports:
        _print_sync(r)
    if any(r.status in ("failed", "partial") or r.failed for r in reports):
        raise typer.Exit(EXIT_PARTIAL)


def _print_sync(r: Any) -> None:
    """One sync's outcome: counts, then why it failed, the rejected records, the sample."""

    resync = " (full resync)" if r.full_resync else ""
    if r.dry_run:
        console.print(
            f"{r.name}: would send {r.inserted} inserts, {r.updated} updates, {r.deleted} "
            f"deletes, {r.skipped} skips{resync}; {r.unchanged} unchanged"
        )
    else:
        console.print(
            f"{r.name}: sent {r.inserted} inserts, {r.updated} updates, {r.deleted} deletes; "
            f"{r.skipped} skipped (not at the destination), {r.failed} failed{resync}"
        )
    if r.status == "failed":
        what = "its check failed" if r.dry_run else f"{r.failed} record(s) not sent"
        err.print(f"[red]{r.name}: destination not usable, {what}[/]: {escape(r.error or '')}")
        return
    if r.check:
        console.print(f"  check: {escape(r.check)}")
    for f in r.failures[:10]:
        err.print(
            f"  [yellow]rejected[/] {f['operation']} {escape(f['key'])}: {escape(f['reason'])}"
        )
    if r.failed > 10:
        err.print(f"  ... {r.failed - 10} more (sync.failed_records in the warehouse)")
    if r.dry_run and r.sample:
        table = Table(title=f"{r.name}: first {len(r.sample)} of what would be sent")
        for col in r.sample[0]:
            table.add_column(col)
        for row in r.sample:
            table.add_row(*("" if v is None else escape(str(v)) for v in row.values()))
        console.print(table)


@app.command()
def status(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Last runs, the champion model and the published serving file."""
    from flows.registry import champion_version

    settings = _settings()
    runs = sorted(settings.runs_dir.glob("*.json"), key=lambda p: p.stat().st_mtime)[-5:]
    records = [json.loads(p.read_text()) for p in runs]
    info: dict[str, Any] = {
        "champion": champion_version(settings.registry) if settings.registry.exists() else None,
        "serving_db": str(settings.serving_db) if settings.serving_db.exists() else None,
        "runs": [
            {k: r.get(k) for k in ("run_id", "status", "as_of", "accounts_scored", "error")}
            for r in records
        ],
    }
    if json_out:
        print(json.dumps(info, indent=2, default=str))
        return
    console.print(f"champion model: {info['champion']}")
    console.print(f"serving file: {info['serving_db']}")
    table = Table(title="last runs")
    for col in ("run_id", "status", "as_of", "accounts_scored", "error"):
        table.add_column(col)
    for r in info["runs"]:
        table.add_row(
            *(
                str(r.get(c) or "")
                for c in ("run_id", "status", "as_of", "accounts_scored", "error")
            )
        )
    console.print(table)


@app.command()
def backfill(
    start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="First as_of date.")],
    end: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="Last as_of date.")],
    every: Annotated[
        str,
        typer.Option(help="day, week (Sundays), month (month ends) or month_start (the 1st)."),
    ] = "month",
    json_out: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
) -> None:
    """Score past as_of dates with only the data known then (history only; nothing synced)."""
    settings = _settings()
    from flows.pipeline import expansion_backfill
    from flows.run.as_of import backfill_dates

    try:
        dates = backfill_dates(start.date(), end.date(), every)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT_USAGE) from None
    if not dates:
        err.print(f"[yellow]no {every} boundary between {start:%Y-%m-%d} and {end:%Y-%m-%d}[/]")
        raise typer.Exit(EXIT_USAGE)
    console.print(f"backfilling {len(dates)} date(s): {', '.join(map(str, dates))}")
    runs = _guarded(lambda: expansion_backfill(start.date(), end.date(), every))
    if json_out:
        print(json.dumps(runs, default=str, indent=2))
        return
    table = Table(title="backfill")
    for col in ("as_of", "model", "accounts scored", "status", "seconds"):
        table.add_column(col)
    for r in runs:
        table.add_row(
            str(r["as_of"]),
            str(r["model"].get("champion_version")),
            str(r["accounts_scored"]),
            r["status"],
            f"{r['stages'].get('total', 0):.0f}",
        )
    console.print(table)
    _ = settings


def _manual_run_id() -> str:
    """The run id of a command that runs stages outside the pipeline flow."""
    return f"manual-{datetime.now():%Y%m%dT%H%M%S}"


def _guarded(call: Any, run_id: str | None = None) -> Any:
    """Run a pipeline call and turn its failures into messages and exit codes. Log lines
    inside carry `run_id` (a flow run inside carries its own)."""
    from flows.errors import GateFailed, LandingZoneEmpty, PipelineBusy, SourceStale
    from flows.logs import run_id_scope

    try:
        with run_id_scope(run_id or _manual_run_id()):
            return call()
    except Exception as exc:
        if isinstance(exc, PipelineBusy):
            err.print(f"[yellow]{exc}[/]")
        elif isinstance(exc, GateFailed):
            err.print(f"[red]stopped at a data-quality gate[/]\n{exc}")
        elif isinstance(exc, LandingZoneEmpty):
            err.print(f"[red]bad input[/]: {exc}")
        elif isinstance(exc, ExtractError):
            err.print(f"[red]bad extract[/]: {exc}")
        elif isinstance(exc, SourceStale):
            err.print(f"[red]stale source[/]: {exc}")
        else:
            err.print(f"[red]failed[/]: {type(exc).__name__}: {exc}")
        raise typer.Exit(exit_code(exc)) from None


def _latest_snapshot(settings: Settings) -> Any:
    from flows.warehouse import Warehouse

    frame = Warehouse.from_settings(settings).read_frame(
        "select max(snapshot_date) as d from marts.account_snapshots"
    )
    return frame["d"].iloc[0].date() if hasattr(frame["d"].iloc[0], "date") else frame["d"].iloc[0]


@app.command()
def train(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Train a challenger on the current marts; promote it only if it beats the champion."""
    from flows.modelling.train import TrainResult, train_model
    from flows.run.lock import pipeline_lock

    settings = _settings()

    def call() -> TrainResult:
        with pipeline_lock(settings), console.status("training (backtest + final models)"):
            return train_model(settings, _latest_snapshot(settings), force=True)

    out = _guarded(call)
    if json_out:
        print(json.dumps(asdict(out), default=str, indent=2))
        return
    console.print(
        f"trained {out.trained_version}; champion now {out.champion_version} ({out.decision})"
    )


@app.command()
def score(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Score the current marts with the champion into the warehouse (publish separately)."""
    from flows.modelling.score import ScoreResult, score_accounts
    from flows.run.lock import pipeline_lock

    settings = _settings()
    run_id = _manual_run_id()

    def call() -> ScoreResult:
        with pipeline_lock(settings), console.status("scoring"):
            return score_accounts(settings, _latest_snapshot(settings), run_id)

    out = _guarded(call, run_id)
    if json_out:
        print(json.dumps(asdict(out), default=str, indent=2))
        return
    console.print(f"{out.accounts_scored} accounts scored with {out.model_version}")


@app.command()
def publish() -> None:
    """Publish the warehouse's marts and scores to the serving file (gated first)."""
    from flows.delivery.stage import publish as publish_scores
    from flows.quality.gates import validate_scores
    from flows.registry import champion_version
    from flows.run.lock import pipeline_lock

    settings = _settings()
    run_id = _manual_run_id()

    def call() -> Any:
        with pipeline_lock(settings):
            validate_scores(settings)
            return publish_scores(
                settings,
                run_id,
                _latest_snapshot(settings),
                champion_version(settings.registry) or "unknown",
            )

    report = _guarded(call, run_id)
    if report.note:  # an as_of before the serving version's: history only
        console.print(f"[yellow]{escape(report.note)}[/]")
    console.print(f"published {sum(report.rows.values())} rows to {report.serving_db}")
    if report.postgres:
        console.print(f"PostgreSQL serving: {escape(report.postgres)}")


@app.command()
def report(
    oracle: Annotated[
        Path | None,
        typer.Option(
            envvar="EXPANSION_ORACLE_FILE",
            help="Parquet of true probabilities (account_id, snapshot_date, p_expansion) to "
            "compare with, such as the demo generator's data/oracle/expansion_oracle.parquet.",
        ),
    ] = None,
) -> None:
    """Write the champion's model report (one offline HTML page) and print its path."""
    import pandas as pd

    from flows.modelling.score import write_model_report
    from flows.registry import champion_version, load_model
    from flows.transform.manifest import FEATURES_TABLE
    from flows.warehouse import Warehouse

    settings = _settings()

    def call() -> Any:
        version = champion_version(settings.registry)
        if version is None:
            raise ValueError(f"no champion model in {settings.registry}: run or train first")
        model = load_model(settings.registry, version)
        scores = Warehouse.from_settings(settings).read_frame("select * from scores.account_scores")
        as_of = scores["as_of"].iloc[0] if not scores.empty else _latest_snapshot(settings)
        snapshots = Warehouse.from_settings(settings).read_frame(
            f"select * from {FEATURES_TABLE} where snapshot_date <= ?",
            [as_of],
        )
        truth = pd.read_parquet(oracle) if oracle is not None else None
        return write_model_report(settings, model, snapshots, scores, truth)

    console.print(f"model report: {_guarded(call)}")


@app.command()
def explain(
    account_id: Annotated[str, typer.Argument(help="The account, as in marts.accounts.")],
    as_of: AsOf = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Why an account scores as it does: probability, offer and top reasons (any account)."""
    from rich.markup import escape

    from flows.modelling.explain import CannotExplain, Explanation
    from flows.modelling.explain import explain as explain_account

    settings = _settings()
    day = as_of.date() if as_of else None

    def call() -> Explanation | CannotExplain:
        try:
            return explain_account(settings, account_id, day)
        except CannotExplain as exc:  # a message, not a failure
            return exc

    out = _guarded(call)
    if isinstance(out, CannotExplain):
        err.print(f"[red]cannot explain[/]: {escape(str(out))}")
        raise typer.Exit(EXIT_BAD_INPUT)
    if json_out:
        print(json.dumps(asdict(out), default=str, indent=2))
        return
    _print_explanation(settings, out)


def _print_explanation(settings: Settings, out: Any) -> None:
    from models.money import format_money

    def money(value: Any) -> str:
        if value is None:
            return "-"
        return format_money(float(value), settings.reporting_currency, settings.locale, 0)

    s = out.score
    console.print(
        f"account [bold]{out.account_id}[/] as of {out.as_of}, model {out.model_version}: "
        f"p(expansion) [bold]{s['p_expansion']:.2f}[/] (upsell {s['p_upsell']:.2f}, "
        f"cross-sell {s['p_cross_sell']:.2f})"
    )
    scored = out.scored
    if scored is None:
        console.print(f"not in the scores of {out.as_of}")
    else:
        rank = scored["action_rank"]
        console.print(
            f"in the scores of {out.as_of} ({scored['model_version']}): decile "
            f"{scored['decile']} of {scored['accounts']:,} accounts, "
            + (f"action rank {int(rank):,}" if rank is not None else "not in the action list")
            + f", touch tier {scored['touch_tier']}"
        )
    if s.get("suppression_reason"):
        console.print(f"[yellow]suppressed[/]: {s['suppression_reason']}")
    offer = s.get("next_best_offer") or "none"
    console.print(
        f"offer: {offer} (offer MRR {money(s.get('offer_mrr'))}, expected "
        f"{money(s.get('expected_expansion_mrr'))})"
    )
    if not out.reasons:
        console.print("no reason: nothing pushes this account's score up")
    for i, reason in enumerate(out.reasons, start=1):
        console.print(f"  {i}. {reason}")


@app.command()
def rollback(
    version: Annotated[
        str | None,
        typer.Argument(help="Version to make champion (default: the one the current replaced)."),
    ] = None,
) -> None:
    """Make an earlier model the champion again; the next scoring run uses it."""
    from flows.registry import rollback as roll_back
    from flows.run.lock import pipeline_lock

    settings = _settings()

    def call() -> str:
        with pipeline_lock(settings):
            return roll_back(settings.registry, version)

    console.print(f"champion is now {_guarded(call)}")


@app.command()
def serve() -> None:
    """Serve the daily and weekly-retrain deployments on this machine (blocks)."""
    settings = _settings()  # before importing Prefect: it reads its settings at import
    from flows.deployments import serve as serve_deployments

    console.print(
        f"serving deployments: daily ({settings.daily_cron}) and weekly-retrain "
        f"({settings.retrain_cron}), time zone {settings.schedule_timezone}"
    )
    serve_deployments(settings)


def _secrets(settings: Settings) -> dict[str, str]:
    """The secrets config/syncs.yml and config/sources.yml name, and whether each is set."""
    from flows.delivery.sync_config import HttpDestination, PostgresDestination, load_syncs
    from flows.ingest.sources import load_sources_config
    from flows.secrets import SecretError, read_secret

    names: list[str] = []
    for spec in load_syncs(settings.syncs_file):
        if isinstance(spec.destination, PostgresDestination):
            names.append(spec.destination.dsn_env)
        elif isinstance(spec.destination, HttpDestination):
            names += spec.destination.headers_env.values()
    sources = load_sources_config(settings.sources_file, settings.landing_dir)
    names += [
        str(spec.model_extra["dsn_env"])
        for spec in sources.sources.values()
        if spec.model_extra and spec.model_extra.get("dsn_env")
    ]
    shown: dict[str, str] = {}
    for name in dict.fromkeys(names):
        try:
            shown[name] = "********" if read_secret(name) else "NOT SET"
        except SecretError as exc:
            shown[name] = f"UNSAFE: {exc}"
    return shown


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings, and the secrets the configuration names (masked)."""
    settings = _settings()
    print(json.dumps({**settings.masked(), "secrets": _secrets(settings)}, indent=2, default=str))


def main() -> None:  # pragma: no cover
    sys.exit(app())
