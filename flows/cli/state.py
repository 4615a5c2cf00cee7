"""`expansion init`: the state folder and an empty warehouse, so the dbt project builds before
the first run (`make install` runs it)."""

from __future__ import annotations

from flows.cli.app import app, console, get_settings


@app.command()
def init() -> None:
    """Create the state folder and, when there is none, a warehouse with the raw schema (empty):
    `cd dbt_project && dbt build` then works on a fresh clone. Changes nothing that exists."""
    from flows.files import restrict_umask
    from flows.run.init import init_state

    restrict_umask()
    settings = get_settings()
    made = init_state(settings)
    if made:
        for what in made:
            console.print(f"created {what}")
    else:
        console.print(f"{settings.warehouse} exists: nothing to do")
