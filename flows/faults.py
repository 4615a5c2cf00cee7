"""Named crash points for fault injection: the process SIGKILLs itself at a chosen instant.

Set `EXPANSION_CRASH_AT=<name>` and the process that reaches `crash_point("<name>")` kills
itself with SIGKILL: no `finally`, no `atexit`, no flush, no lock released by Python, just
what the OOM killer or a power cut leaves behind (the kernel still drops the process's file
locks). Without the variable a crash point is one environment lookup.
`tests/reliability/test_faults.py` crashes a real `expansion run` at each point and checks
what it left; docs/reliability.md ("Faults") lists the outcomes.

The points, in pipeline order:

| name | the instant |
|---|---|
| `load.raw_inserted.<relation>` | inside the load's transaction, right after the rows of `raw.<relation>` were inserted and before the next table's (`crm__accounts` is the first table: mid-way; `usage__usage_daily` the last: every raw row in, no ledger row yet) |
| `load.committed` | raw rows and their ledger rows committed; the raw gate has not seen them |
| `dbt.before_build` | the raw gate passed; `dbt build` not started |
| `dbt.mid_build` | inside `dbt build`, right after the incremental `stg_usage__usage_daily` was built (the marts not yet) |
| `dbt.built` | `dbt build` finished; the marts gate has not run |
| `validate.marts_passed` | the marts gate passed; the drift gate has not run |
| `train.saved` | the challenger's files are in the registry; no promotion decision yet |
| `train.promoted` | right after the champion pointer was replaced (reached only on a promotion) |
| `score.written` | scores and score history committed to the warehouse; not yet gated or published |
| `publish.written` | the new serving file is complete and fsynced beside the old one; not renamed |
| `publish.postgres_built` | (PostgreSQL serving only) `<schema>__new` is built and committed; the schema in place and the file are the previous version; the next publish drops `<schema>__new` |
| `publish.postgres_switched` | (PostgreSQL serving only) PostgreSQL switched to the new version; the file not yet renamed: PostgreSQL is one version ahead, the next publish warns (both run_ids) and writes both |
| `publish.renamed` | the serving file was swapped in; the Parquet `current` link not yet |
| `sync.accepted.<sync>` | the destination of sync `<sync>` accepted the records; its ledger does not know yet |
| `sync.recorded.<sync>` | sync `<sync>` recorded in its ledger; the next sync not started |
"""

from __future__ import annotations

import os
import signal
import sys

CRASH_AT = "EXPANSION_CRASH_AT"


def crash_point(name: str) -> None:
    """SIGKILL this process when `EXPANSION_CRASH_AT` equals `name`; otherwise do nothing."""
    if os.environ.get(CRASH_AT) != name:
        return
    try:
        sys.stderr.write(f"crash point {name}: SIGKILL pid {os.getpid()}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed stderr must not keep the crash from happening
        pass
    os.kill(os.getpid(), signal.SIGKILL)


def armed(name: str) -> bool:
    """Whether `crash_point(name)` would crash: to set up a hook only when it is needed."""
    return os.environ.get(CRASH_AT) == name
