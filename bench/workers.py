"""The benchmark's worker side: each function runs inside a fresh Python process (started by
`bench.processes.run_worker`), does one scenario's work, and writes its results as JSON to
`out`, so imports, caches and peak memory of one scenario never leak into the next."""

from __future__ import annotations

import dataclasses
import json
import os
import traceback
import uuid
from datetime import date
from pathlib import Path
from typing import Any

END_DATE = date(2026, 10, 31)  # the demo data's last day (bench sizes are generated to it)


class _StageFailed(RuntimeError):
    pass


def _write(out: Path, payload: dict[str, Any]) -> None:
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, out)


def _settings() -> Any:
    from flows import prefect_env
    from flows.settings import get_settings

    settings = get_settings()
    prefect_env.configure(settings.home)
    return settings


def demo_business(settings: Any) -> str:
    """The demo business whose declaration is the settings' business file (how `expansion
    demo-data --business` and EXPANSION_CONFIG pair up)."""
    from demo.generator import BUSINESSES

    for name, business in BUSINESSES.items():
        if (settings.project_dir / business.config).resolve() == settings.business_file:
            return name
    raise SystemExit(
        f"no demo business declares {settings.business_file} (demo/generator.py BUSINESSES: "
        + ", ".join(f"{n}: {b.config}" for n, b in BUSINESSES.items())
        + "); the benchmark generates demo data only"
    )


def worker_settings(out: Path) -> None:
    """The settings in effect (bench/settings_record.py), the demo business to generate, the
    flow's stage list and what a backfilled date's model needs."""
    from bench.settings_record import settings_in_effect
    from flows.pipeline import STAGES
    from models.params import load_params

    settings = _settings()
    backtest = load_params(settings.params_path).backtest
    _write(
        out,
        {
            **settings_in_effect(settings),
            "demo_business": demo_business(settings),
            "stage_names": [stage.name for stage in STAGES],
            "backfill_training_needs": {
                "label_horizon_days": settings.label_horizon_days,
                "validation_dates": backtest.validation_dates,
                "min_train_dates": backtest.min_train_dates,
            },
        },
    )


def worker_pipeline(scenario: str, out: Path) -> None:
    """The pipeline's own run (flows.pipeline.run_pipeline: lock, recovery, run record) of its
    own stage list (STAGES), each stage measured, outside Prefect (the stages' plain
    functions)."""
    settings = _settings()
    from bench.measure import measure
    from bench.stage_rows import resolve_as_of, stage_before, stage_rows
    from flows.errors import GateFailed
    from flows.pipeline import STAGES, RunContext, Stage, run_pipeline

    run_id = f"bench-{scenario}-{uuid.uuid4().hex[:8]}"
    records: list[dict[str, Any]] = []
    state: dict[str, Any] = {}
    skip = {x for x in os.environ.get("BENCH_SKIP_STAGES", "").split(",") if x}
    row_counts, before = stage_rows(settings), stage_before(settings)

    def save() -> None:
        _write(out, {"stages": records, **state})

    def measured(stage: Stage) -> Stage:
        def run(ctx: Any) -> Any:
            if stage.name in skip:  # --skip-stages: not run, recorded as skipped
                records.append(
                    {"stage": stage.name, "wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0.0}
                    | {"status": "skipped"}
                )
                state.setdefault("skipped", []).append(stage.name)
                return None
            pre = before[stage.name](ctx) if stage.name in before else None
            status, error, result = "ok", None, None
            with measure() as m:
                try:
                    result = stage.run(ctx)
                except GateFailed as exc:
                    # The gate's work is done and timed; the pipeline would stop here, the
                    # benchmark records the failure and goes on so every stage gets a number.
                    status, error, result = "gate_failed", f"GateFailed: {exc}", exc.results
                    state.setdefault("gates_failed", []).append(stage.name)
                except Exception as exc:
                    status, error = "failed", f"{type(exc).__name__}: {exc}"
                    traceback.print_exc()
            rec = {"stage": stage.name, **m.record(), "status": status}
            if error:
                rec["error"] = error[:4000]
            records.append(rec)
            if status == "failed":
                save()
                raise _StageFailed(stage.name)
            if stage.name in row_counts and result is not None:
                rows_in, rows_out, detail = row_counts[stage.name](ctx, result, pre)
                rec["rows_in"], rec["rows_out"], rec["rows"] = rows_in, rows_out, rows_in
                wall = rec["wall_s"]
                rec["throughput_rows_s"] = round(rows_in / wall, 1) if wall > 0 else None
                if detail:
                    rec["detail"] = detail
            _note_state(state, stage.name, ctx, rec)
            save()
            return result

        return dataclasses.replace(stage, run=run)  # keeps `when` (and any other mark)

    if scenario == "train":  # training alone, forced (a challenger on the current marts)
        (train,) = [s for s in STAGES if s.name == "train"]
        ctx = RunContext(settings, run_id, retrain=True, prefect=False)
        ctx.as_of = resolve_as_of(settings)
        stages: list[Stage] = [measured(train)]
    else:
        ctx = RunContext(settings, run_id, prefect=False)
        stages = [measured(s) for s in STAGES]
    state["stage_list"] = [s.name for s in stages]  # what the flow's list held for this run
    try:
        run_pipeline(ctx, stages)  # the flow's own run: lock, recovery, run record, stages
        failed_gates = state.get("gates_failed")
        state["status"] = (
            f"completed; the pipeline would have stopped at the failed gate(s) {failed_gates}"
            if failed_gates
            else "completed"
        )
        if state.get("skipped"):
            state["status"] += f"; skipped (--skip-stages): {state['skipped']}"
    except _StageFailed as exc:
        state["status"] = f"failed at {exc}"
    state["dbt"] = ctx.summary.dbt  # the run summary's dbt dict (parse_s where reported)
    save()


def _note_state(state: dict[str, Any], name: str, ctx: Any, rec: dict[str, Any]) -> None:
    """What the driver needs from a stage beyond its record."""
    if ctx.as_of is not None:
        state["as_of"] = ctx.as_of.isoformat()
    if ctx.backfill:
        state["backfill"] = True  # the clock turned the run into a backfill
    if name == "dbt_build" and rec.get("detail"):
        state["account_snapshots_rows"] = rec["detail"]["mart_rows"].get("marts.account_snapshots")
    if name == "train" and ctx.model is not None:
        state["champion_version"] = ctx.model.champion_version
    if name == "score" and ctx.scored is not None:
        state["top_accounts"] = ctx.scored.top_accounts[:3]


def worker_generate(out: Path, accounts: int, months: int, seed: int) -> None:
    """The demo extracts of the business the settings declare (EXPANSION_CONFIG)."""
    from bench.measure import measure
    from demo.generator import generate

    settings = _settings()
    business = demo_business(settings)
    with measure() as m:
        summary = generate(
            settings.landing_dir,
            Path(os.environ["EXPANSION_ORACLE_DIR"]),  # bench/work/<tag>/oracle
            accounts=accounts,
            months=months,
            seed=seed,
            end_date=END_DATE,
            business=business,
        )
    rows = sum(summary.rows.values())
    _write(
        out,
        {
            "stage": "generate",
            **m.record(),
            "rows": rows,
            "rows_in": 0,
            "rows_out": rows,
            "throughput_rows_s": round(rows / m.wall_s, 1),
            "status": "ok",
            "business": business,
            "detail": {
                "rows_by_table": summary.rows,
                "base_rate": summary.base_rate,
                "oracle_auc": summary.oracle_auc,
            },
        },
    )


def worker_limit(out: Path, as_of: str) -> None:
    """The limit (bench/limit.py), timed, then its agreement with the marts (not timed)."""
    from bench.limit import agreement, run_limit
    from bench.measure import measure
    from flows.registry import champion_version

    settings = _settings()
    version = champion_version(settings.registry)
    if version is None:
        raise SystemExit("no champion model: the limit needs one")
    day = date.fromisoformat(as_of)
    with measure() as m:
        res = run_limit(
            settings.warehouse,
            settings.registry,
            version,
            day,
            settings.home / "limit" / "limit_scores.duckdb",
            memory_limit=settings.duckdb_memory_limit,
        )
    frame, scores = res.pop("_frame"), res.pop("_scores")
    agree = agreement(settings.warehouse, res["features"], frame, scores, day)
    _write(
        out,
        {
            "stage": "limit",
            **m.record(),
            **res,
            "rows": res["rows_features"],
            "rows_in": res["rows_features"],
            "rows_out": res["rows_scored"],
            "throughput_rows_s": round(res["rows_features"] / m.wall_s, 1),
            "status": "ok",
            "as_of": as_of,
            "champion_version": version,
            "agreement": agree,
        },
    )


def worker_backfill(out: Path, dates: list[str]) -> None:
    """`flows.backfill.run_backfill(settings, dates, prefect=False)` (in flows.pipeline before
    session 11): the shared stages once, the per-date stages for each date; fixed and per-date
    time from its summary."""
    import importlib

    from bench.backfill import summarize
    from bench.measure import measure

    settings = _settings()
    record: dict[str, Any] = {"stage": "backfill", "dates": dates}
    run_backfill = None
    for module in ("flows.backfill", "flows.pipeline"):  # the code measured may be older
        try:
            run_backfill = getattr(importlib.import_module(module), "run_backfill", None)
        except ImportError:
            continue
        if run_backfill is not None:
            break
    if run_backfill is None:
        record["status"] = (
            "unavailable: run_backfill is not in the code measured (issue #19's one-go backfill)"
        )
        _write(out, record)
        return
    days = [date.fromisoformat(d) for d in dates]
    summary, error = None, None
    with measure() as m:
        try:
            summary = run_backfill(settings, days, prefect=False)
        except Exception as exc:  # BackfillStopped carries the summary of the dates done
            error = f"{type(exc).__name__}: {exc}"
            summary = getattr(exc, "summary", None)
            traceback.print_exc()
    record |= m.record()
    record["status"] = "completed" if error is None else "failed"
    if error:
        record["error"] = error[:4000]
    if summary is not None:
        record |= summarize(summary.shared, list(summary.dates))
        record["overhead_s"] = round(
            record["wall_s"] - record["fixed_s"] - record["per_date_total_s"], 2
        )
    _write(out, record)
