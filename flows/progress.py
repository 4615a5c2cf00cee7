"""Progress of long steps (training, scoring, a backfill's dates, sync batches) for whoever shows it.

The rooms report (`report("training", done, total)`, or `reporter("training")` as the
`progress` callback `models/` functions take); a command that shows progress bars listens
(`listening`: `expansion run` and `backfill` on a terminal, flows/cli/console.py). Nobody
listening (a deployment, a test, `--json`, output to a file): a report costs a function call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Listener = Callable[[str, int, int], None]  # (what, steps done, steps in all)

_listeners: list[Listener] = []


def report(what: str, done: int, total: int) -> None:
    """`done` of `total` steps of `what` are done (a listener's error never stops the work)."""
    for listener in list(_listeners):
        try:
            listener(what, done, total)
        except Exception:  # progress is never worth a failed run
            continue


def reporter(what: str) -> Callable[[int, int], None]:
    """The `progress(done, total)` callback of `models/` functions, reporting as `what`."""
    return lambda done, total: report(what, done, total)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """`listener` hears every report made inside."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)
