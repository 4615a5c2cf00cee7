"""The commands that run the pipeline or look after it: demo data, run, backfill, status,
serve."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
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
from flows.cli.summary import print_run_summary
from flows.errors import EXIT_PARTIAL, EXIT_USAGE
from flows.settings import get_settings


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
        bool,
        typer.Option(
            "--json",
            help="Print the run summary as JSON (the run record's fields, and log_file) "
            "instead of the stage lines and tables.",
        ),
    ] = False,
) -> None:
    """Run the whole pipeline once: load, dbt build, gates, train, score, publish, sync.

    The console shows one line per stage as it finishes, then the summary; every log line
    (the pipeline's, Prefect's, dbt's) goes to the run's log file, <home>/logs/run-<start>.log,
    which the summary names."""
    from flows.ingest.landing import check_landing_zone

    settings = get_settings()
    guarded(lambda: check_landing_zone(settings))  # before anything is written, Prefect's too
    configure(settings)
    guarded(lambda: named_secrets(settings))  # reads each named secret: masked from now on
    from flows.cli.console import stage_console
    from flows.pipeline import expansion_pipeline
    from flows.run.private import serving_readable

    with stage_console(settings.home, "run", console, quiet=json_out) as log_file:
        try:
            summary = guarded(
                lambda: expansion_pipeline(
                    as_of=as_of.date() if as_of else None,
                    retrain=retrain,
                    full_refresh=full_refresh,
                ),
                log_file=log_file,
            )
        finally:  # the process umask is 077 (private state); serving is for BI, readable
            serving_readable(settings)
    if json_out:
        print(json.dumps({**summary, "log_file": str(log_file)}, default=str, indent=2))
    else:
        print_run_summary(console, settings, summary, log_file)
    if summary["status"] != "completed":
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def status(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the runs, champion and serving file as JSON.")
    ] = False,
) -> None:
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
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the backfill as JSON (shared stages, each date's summary, log_file) "
            "instead of the stage lines and tables.",
        ),
    ] = False,
) -> None:
    """Score past as_of dates with only the data known then (history only; nothing synced).

    One run: load and the raw gate once, then per date a dbt build, a model of its own date
    (reused on a rerun), scores and their publication to the history."""
    settings = settings_for()
    from flows.backfill import expansion_backfill
    from flows.run.as_of import backfill_plan

    first, last = (start.date() if start else None), (end.date() if end else None)
    try:
        days = backfill_plan(first, last, every, _dates(dates))
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT_USAGE) from None
    if not json_out:
        console.print(f"backfilling {len(days)} date(s): {', '.join(map(str, days))}")
    from flows.cli.console import stage_console

    with stage_console(settings.home, "backfill", console, quiet=json_out, dates=len(days)) as log:
        result = guarded(
            lambda: expansion_backfill(first, last, every, _dates(dates), retrain=retrain),
            log_file=log,
        )
    if json_out:
        print(json.dumps({**result, "log_file": str(log)}, default=str, indent=2))
        return
    # the stages run once for all dates were shown as they finished
    total = result["shared"]["stages"].get("total")
    console.print(
        f"backfill {result['run_id']}: {result['status']}"
        + (f" (once for all dates: {total:.0f} s)" if isinstance(total, int | float) else "")
    )
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
    console.print(f"log: {log}", highlight=False, soft_wrap=True)


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
