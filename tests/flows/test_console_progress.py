"""Progress bars where a person waits: models report through a callback (models/ stays
presentation-free), the rooms through flows/progress.py, the CLI draws on a terminal only."""

from __future__ import annotations

import io

from rich.console import Console

from models.params import load_params
from models.train import train_model
from tests.models.conftest import BUSINESS, fast_params, synthetic_snapshots, usage_columns


def test_training_reports_each_cutoff_and_final_fit() -> None:
    params = fast_params(load_params().with_usage_features(BUSINESS, usage_columns()))
    calls: list[tuple[int, int]] = []
    train_model(synthetic_snapshots(), params, progress=lambda d, t: calls.append((d, t)))
    total = calls[-1][1]
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert {t for _, t in calls} == {total} and total > len(params.targets)  # cut-offs too
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)  # never goes back


def test_bars_only_on_a_terminal() -> None:
    from flows.cli.console import progress_bars
    from flows.progress import report

    for terminal in (False, True):
        out = io.StringIO()
        with progress_bars(Console(file=out, force_terminal=terminal, width=100)):
            for done in range(4):
                report("sync crm", done, 3)
        assert ("sync crm" in out.getvalue()) is terminal
