from __future__ import annotations

from types import SimpleNamespace

import duckdb

from flows.errors import ExtractError, TransientSourceError
from flows.pipeline import _transient


def test_only_transient_failures_are_retried() -> None:
    def retried(exc: Exception) -> bool:
        return _transient(None, None, SimpleNamespace(data=exc))

    assert retried(TransientSourceError("postgresql://db/x: connection refused"))
    assert retried(duckdb.IOException("Could not set lock on file"))
    assert not retried(ExtractError("row 3, column amount: not a valid DECIMAL"))
    assert not retried(ValueError("bad config"))
