"""The settings in effect for a benchmark: what every results file records beside its figures.

Every `EXPANSION_*` setting that differs from its default (`Settings.non_default()` where the
code measured has it; otherwise the same comparison made here, field by field), the settings
file named by `EXPANSION_CONFIG`, and the DuckDB session every pipeline connection gets (memory
limit, threads, temp directory), read back from DuckDB itself so a derived default shows the
value it came to on this machine.
"""

from __future__ import annotations

import os
import re
from typing import Any

SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|DSN$|KEY$", re.I)
# set by the benchmark itself so nothing touches state/ or data/: listed apart
BENCH_SCRATCH = ("EXPANSION_HOME", "EXPANSION_LANDING_DIR", "EXPANSION_ORACLE_DIR")


def _mask(name: str, value: Any) -> str:
    return "***" if SECRET.search(name) else str(value)


def _env_name(name: str) -> str:
    name = str(name).upper()
    return name if name.startswith("EXPANSION_") else f"EXPANSION_{name}"


def config_sets(path: str | None) -> list[str]:
    """The settings a settings file (EXPANSION_CONFIG, TOML) sets, as EXPANSION_* names."""
    import tomllib
    from pathlib import Path

    if not path or not Path(path).is_file():
        return []
    return sorted(_env_name(k) for k in tomllib.loads(Path(path).read_text(encoding="utf-8")))


def non_default(settings: Any) -> tuple[dict[str, str], str]:
    """`EXPANSION_<NAME>` -> value of every setting that differs from its default, and where
    the list comes from."""
    method = getattr(settings, "non_default", None)
    if callable(method):
        return {_env_name(k): str(v) for k, v in method().items()}, "Settings.non_default()"
    out: dict[str, str] = {}
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        default = field.get_default(call_default_factory=True)
        if value != default:
            key = f"EXPANSION_{name.upper()}"
            out[key] = _mask(key, value)
    return out, "field by field against Settings' defaults (Settings.non_default() not found)"


def duckdb_session(settings: Any) -> dict[str, Any]:
    """The DuckDB session settings the pipeline's connections get, as DuckDB reports them
    once applied (an in-memory connection configured as the warehouse's are, so a memory
    limit given as a share of RAM shows what it came to here)."""
    import duckdb

    from flows import warehouse as wh

    declared: dict[str, Any]
    session = getattr(wh, "session_settings", None)
    if callable(session):
        declared = {k: str(v) for k, v in session(settings).items()}
    else:
        declared = {
            "memory_limit": settings.duckdb_memory_limit,
            "threads": settings.duckdb_threads,
            "temp_directory": None
            if settings.duckdb_temp_dir is None
            else str(settings.duckdb_temp_dir),
        }
    effective: dict[str, Any] = {}
    con = duckdb.connect(":memory:")
    try:
        wh.configure(con, wh.Warehouse.from_settings(settings).file(settings.warehouse))
        for name in ("memory_limit", "threads", "temp_directory", "max_temp_directory_size"):
            row = con.execute("select current_setting(?)", [name]).fetchone()
            effective[name] = None if row is None else str(row[0])
    except Exception as exc:  # the record must not stop the benchmark
        effective["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        con.close()
    if not declared.get("temp_directory"):  # in memory DuckDB says ".tmp"; a file gets this
        effective["temp_directory"] = f"{settings.warehouse}.tmp (DuckDB's default)"
    return {"declared": declared, "effective": effective}


def settings_in_effect(settings: Any) -> dict[str, Any]:
    """What a results file records about the settings (module docstring)."""
    values, source = non_default(settings)
    scratch = {k: v for k, v in values.items() if k in BENCH_SCRATCH}
    return {
        "non_default": {k: v for k, v in values.items() if k not in BENCH_SCRATCH},
        "bench_scratch_paths": scratch,
        "source": source,
        "config_file": os.environ.get("EXPANSION_CONFIG"),
        "config_sets": config_sets(os.environ.get("EXPANSION_CONFIG")),
        "business_file": str(settings.business_file),
        "dbt_threads": settings.dbt_threads,
        "duckdb": duckdb_session(settings),
    }


def tuned(record: dict[str, Any]) -> list[str]:
    """The non-default settings that tune the run: neither the benchmark's scratch paths nor
    what the business's settings file sets (that file says what the business is: its metrics,
    currency, language; a memory limit set by hand tunes the run)."""
    business = {"EXPANSION_CONFIG", *record.get("config_sets", [])}
    return sorted(k for k in record.get("non_default", {}) if k not in business)
