"""`expansion`: the command line for the expansion pipeline."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

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

# Exit codes a scheduler can act on.
EXIT_FAILED = 1
EXIT_BAD_INPUT = 3
EXIT_GATE = 4
EXIT_BUSY = 5
EXIT_STALE = 6
EXIT_PARTIAL = 7  # the run published, but some records were rejected by a destination

AsOf = Annotated[
    datetime | None,
    typer.Option(formats=["%Y-%m-%d"], help="Score as of this date (default: latest data)."),
]


def _settings(**overrides: Any) -> Settings:
    from flows import prefect_env

    settings = get_settings(**overrides)
    prefect_env.configure(settings.home)
    return settings


def _landing_is_empty(settings: Settings) -> bool:
    root = settings.landing_dir
    return not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def _generate(settings: Settings, accounts: int, months: int, seed: int) -> None:
    from demo.generator import generate

    with console.status(f"generating demo extracts: {accounts} accounts x {months} months"):
        summary = generate(
            settings.landing_dir, settings.oracle_dir, accounts=accounts, months=months, seed=seed
        )
    console.print(
        f"[green]demo extracts written[/] to {settings.landing_dir} "
        f"(oracle: {settings.oracle_dir}); base rate {summary.base_rate:.1%}, "
        f"oracle ROC AUC {summary.oracle_auc:.3f}"
    )


@app.command("demo-data")
def demo_data(
    accounts: Annotated[int, typer.Option(help="Number of customer accounts.")] = 1000,
    months: Annotated[int, typer.Option(help="Months of history.")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 42,
    out: Annotated[Path | None, typer.Option(help="Landing directory (default: settings).")] = None,
) -> None:
    """Write realistic CRM, billing and usage extracts (and the oracle) for a demo."""
    settings = _settings(landing_dir=out)
    _generate(settings, accounts, months, seed)


@app.command()
def run(
    as_of: AsOf = None,
    retrain: Annotated[
        bool, typer.Option(help="Train a challenger even if a champion exists.")
    ] = False,
    full_refresh: Annotated[
        bool, typer.Option(help="Reload every extract from scratch (raw and ledger rebuilt).")
    ] = False,
    demo_if_empty: Annotated[
        bool, typer.Option(help="Generate demo extracts when the landing zone is empty.")
    ] = True,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the run summary as JSON.")
    ] = False,
) -> None:
    """Run the whole pipeline once: load, dbt build, gates, train, score, publish, sync."""
    settings = _settings()
    if _landing_is_empty(settings):
        if not demo_if_empty:
            err.print(f"[red]landing zone {settings.landing_dir} is empty[/]")
            raise typer.Exit(EXIT_BAD_INPUT)
        _generate(settings, settings.demo_accounts, settings.demo_months, settings.demo_seed)

    from flows.load import ExtractError
    from flows.pipeline import expansion_pipeline
    from flows.stages import PipelineBusy, SourceStale
    from flows.validate import GateFailed

    try:
        summary = expansion_pipeline(
            as_of=as_of.date() if as_of else None, retrain=retrain, full_refresh=full_refresh
        )
    except PipelineBusy as exc:
        err.print(f"[yellow]{exc}[/]")
        raise typer.Exit(EXIT_BUSY) from None
    except GateFailed as exc:
        err.print(f"[red]stopped at a data-quality gate[/]\n{exc}")
        raise typer.Exit(EXIT_GATE) from None
    except ExtractError as exc:
        err.print(f"[red]bad extract[/]: {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except SourceStale as exc:
        err.print(f"[red]stale source[/]: {exc}")
        raise typer.Exit(EXIT_STALE) from None
    except Exception as exc:
        err.print(f"[red]run failed[/]: {type(exc).__name__}: {exc}")
        raise typer.Exit(EXIT_FAILED) from None
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
    model = summary.get("model") or {}
    console.print(
        f"model [bold]{model.get('champion_version')}[/] "
        f"({'trained this run' if model.get('trained_version') else 'reused'}); "
        f"{summary['accounts_scored']} accounts scored"
    )
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
    dry_run: Annotated[bool, typer.Option(help="Print the diff without sending.")] = False,
) -> None:
    """Send changed scores from the serving file to the destinations in config/syncs.yml."""
    from flows.stages import sync as run_syncs

    settings = _settings()
    if not settings.serving_db.exists():
        err.print(f"[red]nothing published yet[/]: {settings.serving_db} does not exist")
        raise typer.Exit(EXIT_BAD_INPUT)
    run_id = f"manual-{datetime.now():%Y%m%dT%H%M%S}"
    for r in run_syncs(settings, run_id, dry_run=dry_run):
        verb = "would send" if dry_run else "sent"
        console.print(
            f"{r.name}: {verb} {r.inserted} inserts, {r.updated} updates, {r.deleted} deletes"
        )


@app.command()
def status(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Last runs, the champion model and the published serving file."""
    from models.registry import champion_version

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


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (secrets masked)."""
    print(json.dumps(_settings().masked(), indent=2, default=str))


def main() -> None:  # pragma: no cover
    sys.exit(app())
