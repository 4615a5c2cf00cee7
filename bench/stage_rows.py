"""Rows in and out of each pipeline stage, and the detail the results keep about it.

Read from the stage's own result and the warehouse, after the stage's timing has stopped, so
counting never adds to a stage's wall. A stage of `flows.pipeline.STAGES` not named in
`stage_rows` (the `as_of` stage, or one added later) is timed without row counts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

Rows = tuple[int, int, dict[str, Any]]
DBT_REPORT_EXTRAS = ("parse_s", "selection", "models_run", "tests_run")


def resolve_as_of(settings: Any) -> date:
    from flows.run.as_of import resolve_as_of as resolve

    day: date = resolve(settings)
    return day


def raw_rows(warehouse: Path) -> dict[str, int]:
    """Rows per table of the raw schema (the loader's bookkeeping tables `_*` left out)."""
    import duckdb

    if not warehouse.exists():
        return {}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = con.execute(
            "select table_name from information_schema.tables where table_schema = 'raw' "
            "and not starts_with(table_name, '_')"
        ).fetchall()
        return {
            t: int(con.execute(f'select count(*) from raw."{t}"').fetchone()[0])  # type: ignore[index]
            for (t,) in tables
        }
    finally:
        con.close()


def schema_rows(warehouse: Path, schemas: tuple[str, ...]) -> dict[str, int]:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        names = con.execute(
            "select schema_name || '.' || table_name from duckdb_tables() "
            f"where schema_name in ({', '.join(repr(s) for s in schemas)})"
        ).fetchall()
        return {
            name: int(con.execute(f"select count(*) from {name}").fetchone()[0])  # type: ignore[index]
            for (name,) in names
        }
    finally:
        con.close()


def count(warehouse: Path, sql: str, params: list[Any] | None = None) -> int:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return int(con.execute(sql, params or []).fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


def dbt_slowest(home: Path, n: int = 8) -> list[dict[str, Any]]:
    """The dbt nodes that took longest in the last build (target/run_results.json)."""
    path = home / "dbt" / "target" / "run_results.json"
    try:
        results = json.loads(path.read_text())["results"]
    except (OSError, ValueError, KeyError):
        return []
    results.sort(key=lambda r: -float(r.get("execution_time") or 0))
    return [
        {"node": r["unique_id"], "seconds": round(float(r["execution_time"]), 2)}
        for r in results[:n]
    ]


def dbt_extras(report: Any) -> dict[str, Any]:
    """What a DbtReport says beyond node counts (parse seconds, selection, models and tests
    run), where the code measured has it: a report without them gives None."""
    if isinstance(report, dict):
        return {k: report.get(k) for k in DBT_REPORT_EXTRAS}
    return {k: getattr(report, k, None) for k in DBT_REPORT_EXTRAS}


def gate_rows(results: Any) -> Rows:
    rows = sum(int(r.rows) for r in results)
    expectations = sum(len(r.outcomes) for r in results)
    detail = {
        "suites": len(results),
        "expectations": expectations,
        "gx_seconds": round(sum(float(r.seconds) for r in results), 3),
        "warnings": sum(len(r.warnings) for r in results),
    }
    return rows, expectations, detail


def action_list_reasons(settings: Any, day: date) -> dict[str, Any]:
    """Whether every account on an action list got its reasons: the listed accounts (an
    action_rank) of each touch tier with a capacity, and how many of them have reason_1; the
    default tier (no capacity) is reasoned only for its first action_list.default_tier_reasons
    accounts, so it is counted apart."""
    import duckdb

    from flows.transform.manifest import model_params

    capped = [t.name for t in model_params(settings).touch_tiers.tiers if t.capacity is not None]
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        rows = con.execute(
            "select touch_tier, count(*), count(reason_1) from scores.account_scores "
            "where as_of = ? and action_rank is not null group by touch_tier",
            [day],
        ).fetchall()
    finally:
        con.close()
    tiers = {str(t): {"listed": int(n), "with_reasons": int(r)} for t, n, r in rows}
    in_capped = [v for t, v in tiers.items() if t in capped]
    listed = sum(v["listed"] for v in in_capped)
    reasoned = sum(v["with_reasons"] for v in in_capped)
    return {
        "capped_tiers": capped,
        "by_tier": tiers,
        "listed_in_capped_tiers": listed,
        "listed_in_capped_tiers_without_reasons": listed - reasoned,
    }


def stage_rows(settings: Any) -> dict[str, Callable[[Any, Any, Any], Rows]]:
    """Per stage name: (ctx, result, before) -> rows in, rows out, detail."""
    wh = settings.warehouse

    def scoring_rows(ctx: Any) -> int:
        return count(
            wh,
            "select count(*) from marts.account_snapshots where snapshot_date = ? and is_active",
            [ctx.day],
        )

    def load(ctx: Any, load: Any, _: Any) -> Rows:
        loaded = sum(load.rows_by_table.values())
        quarantined = sum(load.quarantined_by_table.values())
        detail = {
            "files_loaded": len(load.loaded),
            "files_skipped": load.skipped_files,
            "rows_by_table": load.rows_by_table,
        }
        return loaded + quarantined, loaded, detail

    def freshness(ctx: Any, fresh: Any, _: Any) -> Rows:
        return len(fresh), len(fresh), {"sources": len(fresh)}

    def gate(ctx: Any, gates: Any, _: Any) -> Rows:
        return gate_rows(gates)

    def dbt_build(ctx: Any, dbt: Any, raw_before: Any) -> Rows:
        built = schema_rows(wh, ("staging", "intermediate", "marts"))
        marts = {k: v for k, v in built.items() if k.startswith("marts.")}
        detail = {
            "nodes_passed": dbt.passed,
            "nodes_failed": dbt.failed,
            **dbt_extras(dbt),
            "raw_rows": raw_before,
            "mart_rows": marts,
            "staging_usage_rows": built.get("staging.stg_usage__usage_daily"),
            "intermediate_rows": sum(v for k, v in built.items() if k.startswith("intermediate.")),
            "slowest_nodes": dbt_slowest(settings.home),
        }
        return sum(raw_before.values()), sum(marts.values()), detail

    def drift(ctx: Any, gates: Any, _: Any) -> Rows:
        _, n_exp, detail = gate_rows(gates)
        return (scoring_rows(ctx) if gates else 0), n_exp, detail

    def train(ctx: Any, model: Any, train_rows: Any) -> Rows:
        trained = model.trained_version is not None
        detail = {
            "decision": model.decision,
            "champion_version": model.champion_version,
            "challenger_metrics": model.challenger_metrics,
        }
        return (train_rows if trained else 0), (1 if trained else 0), detail

    def score(ctx: Any, scored: Any, _: Any) -> Rows:
        detail = {
            "alerts": scored.alerts,
            "reasons_top_n": settings.reasons_top_n,
            "action_list_reasons": action_list_reasons(settings, ctx.day),
        }
        return scoring_rows(ctx), scored.accounts_scored, detail

    def publish(ctx: Any, pub: Any, _: Any) -> Rows:
        return sum(pub.rows.values()), sum(pub.rows.values()), {"tables": pub.rows}

    def sync(ctx: Any, synced: Any, _: Any) -> Rows:
        detail = {"syncs": {s.name: {"rows_in": s.rows_in, "sent": s.sent} for s in synced}}
        return sum(s.rows_in for s in synced), sum(s.sent for s in synced), detail

    return {
        "load": load,
        "freshness": freshness,
        "validate_raw": gate,
        "dbt_build": dbt_build,
        "validate_marts": gate,
        "check_drift": drift,
        "train": train,
        "score": score,
        "validate_scores": gate,
        "publish": publish,
        "sync": sync,
    }


def stage_before(settings: Any) -> dict[str, Callable[[Any], Any]]:
    """What a stage's row counts need from before it runs."""
    wh = settings.warehouse
    return {
        "dbt_build": lambda ctx: raw_rows(wh),
        "train": lambda ctx: count(
            wh,
            "select count(*) from marts.account_snapshots where snapshot_date <= ?",
            [resolve_as_of(settings) if ctx.as_of is None else ctx.as_of],
        ),
    }
