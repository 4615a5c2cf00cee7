"""What every `expansion` command shares: the Typer app, the consoles, settings with the
process defaults applied, and the wrapper that turns failures into messages and exit codes."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from flows.errors import ExtractError, exit_code
from flows.settings import Settings, get_settings

app = typer.Typer(
    help="Predict which customer accounts will expand, and tell sales whom to approach.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

AsOf = Annotated[
    datetime | None,
    typer.Option(formats=["%Y-%m-%d"], help="Score as of this date (default: latest data)."),
]


def configure(settings: Settings) -> Settings:
    """Process defaults for Prefect, logging and secrets (creates `<home>/prefect`), and the
    guard that stops the temporary Prefect server with this process (`flows.run.server`)."""
    from flows import prefect_env

    prefect_env.configure(
        settings.home, log_level=settings.log_level, secrets_dir=settings.secrets_dir
    )
    from flows.run import server

    server.guard()  # the temporary Prefect server dies with this process; orphans are reaped
    return settings


def settings_for(**overrides: Any) -> Settings:
    return configure(get_settings(**overrides))


def manual_run_id() -> str:
    """The run id of a command that runs stages outside the pipeline flow."""
    return f"manual-{datetime.now():%Y%m%dT%H%M%S}"


def guarded(call: Any, run_id: str | None = None, log_file: Path | None = None) -> Any:
    """Run a pipeline call and turn its failures into messages and exit codes. Log lines
    inside carry `run_id` (a flow run inside carries its own). The message is the one place
    the console shows the error (inside `flows.logs.run_log` no log line reaches it);
    `log_file`, the command's log file, holds the detail (tracebacks, the tasks' states)."""
    from flows.errors import GateFailed, LandingZoneEmpty, PipelineBusy, SourceStale
    from flows.logs import run_id_scope

    try:
        with run_id_scope(run_id or manual_run_id()):
            return call()
    except Exception as exc:
        if isinstance(exc, PipelineBusy):
            err.print(f"[yellow]{escape(str(exc))}[/]")
        elif isinstance(exc, GateFailed):
            err.print(f"[red]stopped at a data-quality gate[/]\n{escape(str(exc))}")
        elif isinstance(exc, LandingZoneEmpty):
            err.print(f"[red]bad input[/]: {escape(str(exc))}")
        elif isinstance(exc, ExtractError):
            err.print(f"[red]bad extract[/]: {escape(str(exc))}")
        elif isinstance(exc, SourceStale):
            err.print(f"[red]stale source[/]: {escape(str(exc))}")
        else:
            err.print(f"[red]failed[/]: {type(exc).__name__}: {escape(str(exc))}")
        if log_file is not None:
            err.print(f"detail: {log_file}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(exit_code(exc)) from None


def latest_snapshot(settings: Settings) -> Any:
    from flows.warehouse import Warehouse

    frame = Warehouse.from_settings(settings).read_frame(
        "select max(snapshot_date) as d from marts.account_snapshots"
    )
    return frame["d"].iloc[0].date() if hasattr(frame["d"].iloc[0], "date") else frame["d"].iloc[0]


def named_secrets(settings: Settings) -> dict[str, str]:
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
    if settings.serving_dsn_env:  # PostgreSQL serving's DSN
        names.append(settings.serving_dsn_env)
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
    settings = settings_for()
    print(
        json.dumps({**settings.masked(), "secrets": named_secrets(settings)}, indent=2, default=str)
    )
