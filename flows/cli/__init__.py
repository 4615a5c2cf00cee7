"""`expansion`: the command line for the expansion pipeline.

One Typer app (`flows/cli/app.py`, with what every command shares); the commands live by what
they act on: `runs.py` (demo data, run, backfill, status, serve), `delivery.py` (publish,
sync), `modelling.py` (train, score, report, explain, rollback, models list), `state.py`
(init).
"""

from __future__ import annotations

import sys

from flows.cli import delivery, modelling, runs, state  # noqa: F401  (each registers its commands)
from flows.cli.app import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover
    sys.exit(app())
