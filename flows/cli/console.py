"""What `expansion run` and `expansion backfill` show while they run: one line per stage as it
finishes, progress bars where a person waits (on a terminal only), and nothing else; the
detail (the pipeline's, Prefect's and dbt's log lines) goes to the command's log file
(`flows.logs.run_log`), which the summary names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flows.logs import run_log, run_log_path
from flows.progress import listening
from flows.run.stage_lines import STAGE_LOGGER


class StageLines(logging.Handler):
    """Prints each finished stage (a `flows.stages` record) as one console line; with a
    progress bar, advances it at each date a backfill finishes."""

    def __init__(
        self, console: Console, progress: Progress | None = None, every: bool = True
    ) -> None:
        super().__init__(logging.INFO)
        self.console = console
        self.progress = progress
        self.every = every  # False: a backfill's dates as one line each, not every stage
        self.dates: Any = None  # the progress bar's task of a backfill's dates

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stage = getattr(record, "stage", None)
            day = getattr(record, "as_of", None)
            if stage is None:
                return
            if stage != "date" and getattr(record, "backfill", False) and day and not self.every:
                return  # a backfill's date: one line when it is done (and the progress bar)
            if stage == "date" or (getattr(record, "backfill", False) and day):
                stage = f"{day} {'done' if stage == 'date' else stage}"
            words = getattr(record, "words", "")
            line = f"{stage:<26} {float(getattr(record, 'seconds', 0.0)):>6.1f} s  {words}"
            out = self.progress.console if self.progress is not None else self.console
            out.print(line.rstrip(), markup=False, highlight=False)
            if self.progress is not None and self.dates is not None and stage.endswith(" done"):
                self.progress.advance(self.dates)
        except Exception:  # a progress line must never fail the run
            self.handleError(record)


def _bars(console: Console) -> Progress:
    """Rich progress bars on `console`, gone when done (the stage lines stay)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


class _ProgressBars:
    """A `flows.progress` listener: one bar per step reported, removed once complete."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.bars: dict[str, Any] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        bar = self.bars.get(what)
        if bar is None:
            if done >= total:
                return
            bar = self.bars[what] = self.progress.add_task(what, total=total)
        self.progress.update(bar, completed=done, total=total)
        if done >= total:
            self.progress.remove_task(bar)
            del self.bars[what]


@contextmanager
def stage_console(
    home: Path,
    command: str,
    console: Console,
    *,
    quiet: bool = False,
    dates: int | None = None,
) -> Iterator[Path]:
    """The log file of this command (`<home>/logs/<command>-<start>.log`, its path yielded),
    the console's log lines off, and the stage lines on `console` (none with `quiet`, e.g.
    `--json`). `dates`: a backfill's number of dates, shown as a progress bar on a terminal."""
    with ExitStack() as stack:
        path = stack.enter_context(run_log(run_log_path(home, command)))
        if quiet:
            yield path
            return
        progress = None
        if dates and console.is_terminal:
            progress = stack.enter_context(_bars(console))
        if console.is_terminal:  # training, sync batches: bars while they run
            if progress is None:
                progress = stack.enter_context(_bars(console))
            stack.enter_context(listening(_ProgressBars(progress)))
        handler = StageLines(console, progress, every=dates is None)
        if progress is not None and dates:
            handler.dates = progress.add_task("backfill dates", total=dates)
        stages = logging.getLogger(STAGE_LOGGER)
        stages.addHandler(handler)
        stack.callback(stages.removeHandler, handler)
        if stages.getEffectiveLevel() > logging.INFO:  # e.g. EXPANSION_LOG_LEVEL=WARNING
            stack.callback(stages.setLevel, stages.level)
            stages.setLevel(logging.INFO)
        yield path


@contextmanager
def progress_bars(console: Console) -> Iterator[None]:
    """Bars for what the rooms report (flows/progress.py) while inside, on a terminal only."""
    if not console.is_terminal:
        yield
        return
    with _bars(console) as progress, listening(_ProgressBars(progress)):
        yield
