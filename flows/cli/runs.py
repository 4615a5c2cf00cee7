"""The commands that run the pipeline or look after it: demo data, run, backfill, status,
serve."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from flows.cli.app import (
    AsOf,
    app,
    configure,
    console,
    err,
    guarded,
    named_secrets,
    settings_for,
)
from flows.errors import EXIT_PARTIAL, EXIT_USAGE
from flows.settings import Settings, get_settings


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
    guarded(lambda: check_landing_zone(settings))  # before anything is written, Prefect's too
    configure(settings)
    guarded(lambda: named_secrets(settings))  # reads each named secret: masked from now on
    from flows.pipeline import expansion_pipeline
    from flows.run.private import serving_readable

    try:
        summary = guarded(
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
def status(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Last runs, the champion model and the published serving file."""
    from flows.registry import champion_version

    settings = settings_for()
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


def _dates(text: str | None) -> list[date] | None:
    """`--dates 2026-01-31,2026-03-31` as dates (None: not given)."""
    if not text:
        return None
    try:
        return [date.fromisoformat(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise typer.BadParameter(
            f"{exc}: expected dates as YYYY-MM-DD, separated by commas", param_hint="--dates"
        ) from None


@app.command()
def backfill(
    start: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="First as_of date.")
    ] = None,
    end: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Last as_of date.")
    ] = None,
    every: Annotated[
        str,
        typer.Option(help="day, week (Sundays), month (month ends) or month_start (the 1st)."),
    ] = "month",
    dates: Annotated[
        str | None,
        typer.Option(help="Instead of --start/--end: as_of dates, e.g. 2026-01-31,2026-03-31."),
    ] = None,
    retrain: Annotated[
        bool,
        typer.Option(help="Fit each date's model again, even when its rows were fitted before."),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the backfill as JSON.")] = False,
) -> None:
    """Score past as_of dates with only the data known then (history only; nothing synced).

    One run: load and the raw gate once, then per date a dbt build, a model of its own date
    (reused on a rerun), scores and their publication to the history."""
    settings = settings_for()
    from flows.pipeline import expansion_backfill
    from flows.run.as_of import backfill_plan

    first, last = (start.date() if start else None), (end.date() if end else None)
    try:
        days = backfill_plan(first, last, every, _dates(dates))
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT_USAGE) from None
    console.print(f"backfilling {len(days)} date(s): {', '.join(map(str, days))}")
    result = guarded(lambda: expansion_backfill(first, last, every, _dates(dates), retrain=retrain))
    if json_out:
        print(json.dumps(result, default=str, indent=2))
        return
    console.print(f"backfill {result['run_id']}: {result['status']}")
    fixed = Table(title="once for all dates")
    fixed.add_column("stage")
    fixed.add_column("seconds", justify="right")
    for name, seconds in result["shared"]["stages"].items():
        fixed.add_row(name, f"{seconds:.1f}")
    console.print(fixed)
    table = Table(title="per date")
    for col in ("as_of", "model", "accounts scored", "status", "seconds"):
        table.add_column(col)
    for r in result["dates"]:
        model = r["model"] or {}
        table.add_row(
            str(r["as_of"]),
            f"{model.get('champion_version')}{' (reused)' if model.get('reused') else ''}",
            str(r["accounts_scored"]),
            r["status"],
            f"{r['stages'].get('total', 0):.0f}",
        )
    console.print(table)
    _ = settings


@app.command()
def serve() -> None:
    """Serve the daily and weekly-retrain deployments on this machine (blocks)."""
    settings = settings_for()  # before importing Prefect: it reads its settings at import
    from flows.deployments import serve as serve_deployments

    console.print(
        f"serving deployments: daily ({settings.daily_cron}) and weekly-retrain "
        f"({settings.retrain_cron}), time zone {settings.schedule_timezone}"
    )
    serve_deployments(settings)
