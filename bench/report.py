"""The benchmark's results as a reader sees them: the fixed costs apart from the per-row work,
the limit's note, and the markdown written beside the JSON (and printed)."""

from __future__ import annotations

import json
from typing import Any


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def _stage_wall(scenario: dict[str, Any], name: str) -> float | None:
    for s in scenario.get("stages", []):
        if s["stage"] == name and s.get("status") in ("ok", "gate_failed"):
            return float(s["wall_s"])
    return None


def _dbt_parse(scenario: dict[str, Any]) -> float | None:
    """dbt's parse seconds of a run: its summary's dbt dict (DbtReport.parse_s), None where
    the code measured does not report it."""
    parse = (scenario.get("dbt") or {}).get("parse_s")
    if parse is None:
        for s in scenario.get("stages", []):
            if s["stage"] == "dbt_build":
                parse = (s.get("detail") or {}).get("parse_s")
    return _num(parse)


def _split(total: float, freshness: float | None, parse: float | None, prefect: float) -> dict:
    fixed = (freshness or 0.0) + (parse or 0.0) + prefect
    return {
        "freshness_s": freshness,
        "dbt_parse_s": parse,
        "prefect_s": round(prefect, 2) if prefect else None,
        "fixed_s": round(fixed, 2),
        "per_row_s": round(total - fixed, 2),
        "total_s": round(total, 2),
    }


def fixed_costs(result: dict[str, Any]) -> dict[str, Any]:
    """Per run: the costs that do not grow with the data (Prefect's overhead, dbt's parse,
    the freshness check: dbt's start-up and one query per source) apart from the rest, the
    per-row work. Prefect's temporary server start-up is the overhead of `expansion run` with
    the temporary server minus that with a running server (two days' runs, same data size)."""
    sc = result.get("scenarios", {})
    out: dict[str, Any] = {}
    for name in ("first_run", "incremental"):
        run = sc.get(name)
        if run and str(run.get("status", "")).startswith("completed"):
            out[name] = _split(
                run["total"]["wall_s"], _stage_wall(run, "freshness"), _dbt_parse(run), 0.0
            )
    for name in ("prefect", "prefect_server"):
        run = sc.get(name)
        if run and run.get("exit_code") == 0:
            stages = run.get("flow_stage_seconds") or {}
            split = _split(
                run["wall_s"],
                _num(stages.get("freshness")),
                _num(run.get("dbt_parse_s")),
                float(run["fixed_overhead_s"]),
            )
            out[name] = split
    if "prefect" in out and "prefect_server" in out:
        out["prefect_temporary_server_startup_s"] = round(
            sc["prefect"]["fixed_overhead_s"] - sc["prefect_server"]["fixed_overhead_s"], 2
        )
        out["prefect_flow_overhead_s"] = sc["prefect_server"]["fixed_overhead_s"]
    for name in ("backfill", "backfill_prefect"):
        run = sc.get(name)
        if run and run.get("per_date"):
            out[name] = {
                "fixed_s": run.get("fixed_s"),
                "fixed_dbt_parse_s": run.get("fixed_dbt_parse_s"),
                "per_date_mean_s": run.get("per_date_mean_s"),
                "dates": run.get("dates_run"),
                "overhead_s": run.get("overhead_s"),
                "total_s": run.get("wall_s"),
            }
    return out


def limit_note(lim: dict[str, Any]) -> str:
    agree = lim.get("agreement", {})
    match = agree.get("feature_match_share", {})
    low = {k: v for k, v in match.items() if v < 0.999}
    return (
        f"the limit's one query computes {len(agree.get('features_exact', []))} of the "
        f"champion's {len(match)} features exactly as the marts do (same value on >= 99.9% of "
        f"active accounts); match shares below 99.9%: {json.dumps(low) if low else 'none'}. "
        f"Scores vs the pipeline's at the same as_of: p_expansion correlation "
        f"{agree.get('p_expansion_corr')}, mean |diff| {agree.get('p_expansion_mean_abs_diff')}, "
        f"top-decile overlap {agree.get('top_decile_overlap')}. It reads raw.* in the "
        "warehouse, so loading the extracts is not part of the limit."
    )


def fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _header(result: dict[str, Any]) -> list[str]:
    m = result["machine"]
    business = result["params"].get("business")
    return [
        f"# Pipeline benchmark, size {result['size']} "
        f"({result['params']['accounts']:,} accounts x {result['params']['months']} months"
        + (f"; business {business}" if business else "")
        + ")",
        "",
        f"{result['date']} on {m['hostname']}: {m['cpu_model']}, {m['cores']} cores, "
        f"{m['ram_gb']} GB RAM; load average {result['load_avg_start']} at start, "
        f"{result.get('load_avg_end')} at end. duckdb {m['versions'].get('duckdb')}, lightgbm "
        f"{m['versions'].get('lightgbm')}, prefect {m['versions'].get('prefect')}, dbt-core "
        f"{m['versions'].get('dbt-core')}, dbt-duckdb {m['versions'].get('dbt-duckdb')}.",
        "",
        f"Command: `{result['command']}`; code: {result['code']['code']} at commit "
        f"{result['code']['commit']}"
        + (
            f" with {result['code']['uncommitted_paths']} uncommitted paths"
            if result["code"].get("uncommitted_paths")
            else ""
        )
        + ".",
    ]


def _settings_lines(result: dict[str, Any]) -> list[str]:
    rec = result.get("settings")
    if not rec:
        return []
    non_default = rec.get("non_default") or {}
    duck = rec.get("duckdb", {})
    eff = duck.get("effective", {})
    values = ", ".join(f"`{k}={v}`" for k, v in non_default.items()) or "none"
    return [
        "",
        f"Settings in effect: every EXPANSION_* setting that differs from its default "
        f"({rec.get('source')}): {values}"
        + (f"; settings file {rec['config_file']}" if rec.get("config_file") else "")
        + f". DuckDB session: memory_limit {eff.get('memory_limit')}, threads "
        f"{eff.get('threads')}, temp_directory {eff.get('temp_directory') or 'DuckDB default'}"
        f"; dbt threads {rec.get('dbt_threads')}. (Scratch paths set by the benchmark: "
        f"{', '.join(rec.get('bench_scratch_paths', {})) or 'none'}.)",
    ]


def _stage_table(result: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "| scenario | stage | wall_s | cpu_s | peak_rss_mb | rows_in | rows_out | rows/s | status |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    gen = result.get("generate")
    if gen and "wall_s" in gen:
        lines.append(
            f"| generate | generate | {fmt(gen['wall_s'])} | {fmt(gen['cpu_s'])} | "
            f"{fmt(gen['peak_rss_mb'], 0)} | | {fmt(gen.get('rows_out'))} | "
            f"{fmt(gen.get('throughput_rows_s'), 0)} | {gen['status']} |"
        )
    for name, sc in result["scenarios"].items():
        if "stages" not in sc:
            continue
        for s in sc["stages"]:
            lines.append(
                f"| {name} | {s['stage']} | {fmt(s['wall_s'])} | {fmt(s['cpu_s'])} | "
                f"{fmt(s['peak_rss_mb'], 0)} | {fmt(s.get('rows_in'))} | "
                f"{fmt(s.get('rows_out'))} | {fmt(s.get('throughput_rows_s'), 0)} | "
                f"{s['status']} |"
            )
        t = sc.get("total", {})
        lines.append(
            f"| {name} | **total** | **{fmt(t.get('wall_s'))}** | {fmt(t.get('cpu_s'))} | "
            f"{fmt(t.get('peak_rss_mb'), 0)} | | | | {sc.get('status', '')} |"
        )
    lim = result.get("limit")
    if lim and "limit_wall_s" in lim:
        lines.append(
            f"| limit | query + predict + write | **{fmt(lim['limit_wall_s'], 2)}** | "
            f"{fmt(lim['cpu_s'])} | {fmt(lim['peak_rss_mb'], 0)} | "
            f"{fmt(lim.get('rows_in'))} | {fmt(lim.get('rows_out'))} | "
            f"{fmt(lim.get('throughput_rows_s'), 0)} | {lim['status']} |"
        )
    for name, what in (
        ("prefect", "`expansion run` (whole flow, temporary server)"),
        ("prefect_server", "`expansion run` (whole flow, running server)"),
    ):
        run = result["scenarios"].get(name)
        if run and "wall_s" in run:
            lines.append(
                f"| {name} | {what} | **{fmt(run['wall_s'])}** | "
                f"{fmt(run['cpu_s'])} | {fmt(run['peak_rss_mb'], 0)} | "
                f"{fmt(sum((run.get('rows_loaded') or {}).values()))} | "
                f"{fmt(run.get('accounts_scored'))} | | {run['status']} |"
            )
    for name, what in (
        ("backfill", "`run_backfill` (no Prefect)"),
        ("backfill_prefect", "`expansion backfill` (temporary server)"),
    ):
        run = result["scenarios"].get(name)
        if run:
            lines.append(
                f"| {name} | {what}, {len(run.get('dates', []))} dates | "
                + (f"**{fmt(run['wall_s'])}**" if run.get("wall_s") is not None else "")
                + f" | {fmt(run.get('cpu_s'))} | "
                f"{fmt(run.get('peak_rss_mb'), 0)} | | | | {run.get('status')} |"
            )
    return lines


def _ratio_lines(result: dict[str, Any]) -> list[str]:
    lines = [""]
    lim = result.get("limit")
    if lim and "limit_wall_s" in lim:
        lines.append(
            f"**Limit** (as_of {lim['as_of']}): {lim['limit_wall_s']:.2f} s = model load "
            f"{lim['model_load_s']:.2f} + features query {lim['query_s']:.2f} + predict "
            f"{lim['predict_s']:.2f} + write {lim['write_s']:.2f}."
        )
    for key, label in (
        ("ratio_to_limit", "incremental run (plain stages) / limit"),
        ("ratio_to_limit_prefect", "incremental run through Prefect (`expansion run`) / limit"),
        (
            "ratio_to_limit_prefect_server",
            "incremental run through Prefect, running server / limit",
        ),
        ("ratio_first_run_to_limit", "first run / limit"),
    ):
        if result.get(key) is not None:
            lines.append(f"- **{label}: {result[key]:.1f}x**")
    if result.get("limit_note"):
        lines += ["", f"Limit note: {result['limit_note']}"]
    return lines


FIXED_LABELS = {
    "first_run": "first run (plain stages)",
    "incremental": "daily run (plain stages)",
    "prefect": "daily run, `expansion run`, temporary Prefect server",
    "prefect_server": "daily run, `expansion run`, running Prefect server",
}


def _fixed_lines(result: dict[str, Any]) -> list[str]:
    costs = result.get("fixed_costs") or {}
    runs = [k for k in FIXED_LABELS if k in costs]
    if not runs and not any(k in costs for k in ("backfill", "backfill_prefect")):
        return []
    lines = [
        "",
        "Fixed costs (do not grow with the data) apart from the per-row work (seconds; dbt "
        "parse from the run summary's `dbt.parse_s`, blank where the code does not report it):",
        "",
        "| run | freshness | dbt parse | Prefect overhead | fixed | per-row work | total |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for k in runs:
        c = costs[k]
        lines.append(
            f"| {FIXED_LABELS[k]} | {fmt(c['freshness_s'])} | {fmt(c['dbt_parse_s'])} | "
            f"{fmt(c['prefect_s'])} | {fmt(c['fixed_s'])} | {fmt(c['per_row_s'])} | "
            f"{fmt(c['total_s'])} |"
        )
    if "prefect_temporary_server_startup_s" in costs:
        lines.append(
            f"\nPrefect: temporary server start-up {costs['prefect_temporary_server_startup_s']:.1f}"
            f" s (overhead with it minus with a running server); flow and task overhead against "
            f"a running server {costs['prefect_flow_overhead_s']:.1f} s."
        )
    for k, label in (("backfill", "run_backfill"), ("backfill_prefect", "expansion backfill")):
        b = costs.get(k)
        if b:
            lines.append(
                f"\nBackfill ({label}, {b['dates']} dates): fixed (shared stages, once) "
                f"{fmt(b['fixed_s'])} s (dbt parse {fmt(b['fixed_dbt_parse_s']) or 'n/a'}), "
                f"per date {fmt(b['per_date_mean_s'])} s on average, outside the stages "
                f"{fmt(b['overhead_s'])} s, total {fmt(b['total_s'])} s."
            )
    return lines


def _backfill_lines(result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name in ("backfill", "backfill_prefect"):
        run = result["scenarios"].get(name)
        if not run or not run.get("per_date"):
            continue
        lines += ["", f"{name}: per date", "", "| as_of | seconds | dbt parse | status |"]
        lines.append("|---|---:|---:|---|")
        for d in run["per_date"]:
            lines.append(
                f"| {d['as_of']} | {fmt(d['seconds'])} | {fmt(d['dbt_parse_s'])} | {d['status']} |"
            )
    return lines


def _target_lines(result: dict[str, Any]) -> list[str]:
    targets = result.get("targets") or []
    if not targets:
        return []
    lines = ["", "Targets of issue #19 that apply to this run:", ""]
    lines += ["| target | measured | limit | met |", "|---|---:|---:|---|"]
    for t in targets:
        met = "yes" if t["met"] else "NO"
        lines.append(
            f"| {t['target']} | {fmt(t['measured'])} | {fmt(t['limit'])} | {met}"
            + (f" ({t['note']})" if t.get("note") else "")
            + " |"
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    lines = [
        *_header(result),
        *_settings_lines(result),
        *_stage_table(result),
        *_ratio_lines(result),
        *_fixed_lines(result),
        *_backfill_lines(result),
        *_target_lines(result),
    ]
    if result.get("notes"):
        lines += ["", *[f"- {n}" for n in result["notes"]]]
    return "\n".join(lines) + "\n"
