"""The delivery commands: publish the warehouse's scores, and sync them to destinations."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from flows.cli.app import app, console, err, guarded, latest_snapshot, manual_run_id, settings_for
from flows.errors import EXIT_BAD_INPUT, EXIT_PARTIAL, EXIT_USAGE


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

    settings = settings_for()
    run_id = manual_run_id()
    if names:
        known = {s.name for s in guarded(lambda: load_syncs(settings.syncs_file))}
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

    from flows.cli.console import progress_bars

    with progress_bars(console):  # the batches of an HTTP destination
        reports = guarded(call, run_id)
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
def publish() -> None:
    """Publish the warehouse's marts and scores to the serving file (gated first)."""
    from flows.delivery.stage import publish as publish_scores
    from flows.quality.gates import validate_scores
    from flows.registry import champion_version
    from flows.run.lock import pipeline_lock

    settings = settings_for()
    run_id = manual_run_id()

    def call() -> Any:
        with pipeline_lock(settings):
            validate_scores(settings)
            return publish_scores(
                settings,
                run_id,
                latest_snapshot(settings),
                champion_version(settings.registry) or "unknown",
            )

    report = guarded(call, run_id)
    if report.note:  # an as_of before the serving version's: history only
        console.print(f"[yellow]{escape(report.note)}[/]")
    console.print(f"published {sum(report.rows.values())} rows to {report.serving_db}")
    if report.postgres:
        console.print(f"PostgreSQL serving: {escape(report.postgres)}")
