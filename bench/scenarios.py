"""The benchmark's scenarios, driver side: each runs its work in a fresh process (a worker of
bench/workers.py, or a real `expansion` command) and adds what it measured to the results."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import backfill as backfill_dates
from bench.processes import backfill_command, prefect_run, prefect_server, run_worker
from bench.report import limit_note

SCENARIOS = (
    "first_run",
    "incremental",
    "limit",
    "prefect",
    "prefect_server",
    "train",
    "backfill",
    "backfill_prefect",
)


@dataclass
class Bench:
    """One benchmark run: where it works, the workers' environment, and its results."""

    env: dict[str, str]
    work: Path
    log: Path
    timeout: float
    result: dict[str, Any]
    save: Callable[[], None]
    skip_stages: str = ""
    stage_names: tuple[str, ...] = field(default_factory=tuple)

    @property
    def home(self) -> Path:
        return self.work / "home"

    @property
    def landing(self) -> Path:
        return self.work / "landing"

    def say(self, msg: str) -> None:
        print(f"[{datetime.now():%H:%M:%S}] {msg}", flush=True)

    def worker(self, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        return run_worker(list(args), env or self.env, self.log, self.timeout)


def summary(data: dict[str, Any]) -> dict[str, Any]:
    st = data.get("stages", [])
    return {
        "wall_s": round(sum(s["wall_s"] or 0 for s in st), 3),
        "cpu_s": round(sum(s["cpu_s"] or 0 for s in st), 3),
        "peak_rss_mb": max((s["peak_rss_mb"] or 0 for s in st), default=0.0),
    }


def settings(b: Bench) -> dict[str, Any]:
    """The settings in effect in the workers' environment (bench/settings_record.py)."""
    out = b.work / "settings.json"
    code = b.worker("--worker", "settings", "--out", str(out))["code"]
    if code != 0 or not out.exists():
        raise SystemExit(f"could not read the settings in effect (exit {code}); see {b.log}")
    record: dict[str, Any] = json.loads(out.read_text())
    return record


def pipeline(b: Bench, name: str) -> bool:
    """The stages of flows.pipeline.STAGES, measured one by one (bench/workers.py)."""
    out = b.work / f"{name}.json"
    b.say(f"{name}: running the stages")
    env = {**b.env, "BENCH_SKIP_STAGES": b.skip_stages if name == "first_run" else ""}
    run = b.worker("--worker", "pipeline", "--scenario", name, "--out", str(out), env=env)
    code, wall = run["code"], run["wall_s"]
    data = json.loads(out.read_text()) if out.exists() else {"stages": []}
    if code != 0 and (data.get("status") is None or data["status"].startswith("completed")):
        _killed(b, name, data, run)
    data["total"] = summary(data)
    data["process_wall_s"] = round(wall, 2)
    data["process_tree_peak_rss_mb"] = run["tree_peak_rss_mb"]
    b.result["scenarios"][name] = data
    b.say(
        f"{name}: {data.get('status')} in {data['total']['wall_s']:.1f} s of stages "
        f"({wall:.1f} s with process start), peak {data['total']['peak_rss_mb']:.0f} MB"
    )
    b.save()
    return str(data.get("status", "")).startswith("completed")


def _killed(b: Bench, name: str, data: dict[str, Any], run: dict[str, Any]) -> None:
    """A worker that died mid-stage: the stage that was running gets a row, with its wall so
    far and the process tree's peak RSS."""
    if run["timed_out"]:
        why = f"killed after the {b.timeout / 60:.0f} min timeout"
    elif run.get("oom"):
        why = "killed by the kernel's OOM killer"
    else:
        why = f"worker exit {run['code']}"
    data["status"] = why
    done = [s["stage"] for s in data["stages"]]
    order = ["train"] if name == "train" else list(data.get("stage_list") or b.stage_names)
    pending = [s for s in order if s not in done]
    if not pending:
        return
    data["status"] += f" during stage {pending[0]}"
    data["stages"].append(
        {
            "stage": pending[0],
            "wall_s": round(max(0.0, run["wall_s"] - sum(s["wall_s"] for s in data["stages"])), 1),
            "cpu_s": None,
            "peak_rss_mb": run["tree_peak_rss_mb"],
            "status": why,
            "note": "wall = worker wall - finished stages (includes process start-up); peak = "
            "the worker's RSS sampled every 50 ms over its life",
            **({"oom_report": run["oom"]} if run.get("oom") else {}),
        }
    )


def limit(b: Bench, as_of: str) -> None:
    """The limit at `as_of` (bench/limit.py) and the ratios of the runs to it."""
    out = b.work / "limit.json"
    b.say(f"limit at as_of {as_of}")
    code = b.worker("--worker", "limit", "--out", str(out), "--as-of", as_of)["code"]
    result = b.result
    if code != 0 or not out.exists():
        result["limit"] = {"status": f"failed (exit {code}); see {b.log}"}
        b.say(f"limit failed (exit {code})")
        b.save()
        return
    lim = json.loads(out.read_text())
    result["limit"], result["limit_wall_s"] = lim, lim["limit_wall_s"]
    result["limit_note"] = limit_note(lim)
    sc = result["scenarios"]
    basis = sc.get("incremental") or sc.get("first_run")
    if basis and str(basis.get("status", "")).startswith("completed"):
        result["ratio_to_limit"] = round(basis["total"]["wall_s"] / lim["limit_wall_s"], 2)
        result["ratio_basis"] = "incremental" if "incremental" in sc else "first_run"
    first = sc.get("first_run")
    if first and str(first.get("status", "")).startswith("completed") and not first.get("skipped"):
        result["ratio_first_run_to_limit"] = round(
            first["total"]["wall_s"] / lim["limit_wall_s"], 2
        )
    low = {k: v for k, v in lim["agreement"]["feature_match_share"].items() if v < 0.999}
    b.say(
        f"limit: {lim['limit_wall_s']:.2f} s; ratio {result.get('ratio_to_limit')}; agreement: "
        f"{len(lim['agreement']['features_exact'])} of "
        f"{len(lim['agreement']['feature_match_share'])} features exact"
        + (f", below 99.9%: {low}" if low else "")
        + f"; p_expansion correlation {lim['agreement']['p_expansion_corr']}"
    )
    b.save()


def prefect(b: Bench, name: str) -> None:
    """Another new day, then `expansion run --json`: with Prefect's temporary server
    (`prefect`) or against a server started for it (`prefect_server`)."""
    day = append_day(b.landing)
    b.say(f"{name}: appended usage for {day}; running `expansion run --json`")
    if name == "prefect":
        pf = prefect_run(b.env, b.home, b.log, b.timeout)
    else:
        with prefect_server(b.env, b.home, b.log) as url:
            pf = prefect_run(b.env, b.home, b.log, b.timeout, api_url=url)
    pf["incremental_day"] = day
    b.result["scenarios"][name] = pf
    if b.result.get("limit_wall_s") and pf["exit_code"] == 0:
        b.result[f"ratio_to_limit_{name}"] = round(pf["wall_s"] / b.result["limit_wall_s"], 2)
    b.say(
        f"{name}: {pf['status']} in {pf['wall_s']:.1f} s (overhead {pf['fixed_overhead_s']:.1f} s)"
    )
    b.save()


def backfill(b: Bench, name: str, as_of: str, wanted: int = 12) -> None:
    """A monthly backfill of `wanted` dates before `as_of`: `run_backfill` without Prefect
    (`backfill`) or the real `expansion backfill` command (`backfill_prefect`)."""
    params = b.result["params"]
    first = backfill_dates.first_usage_day(date.fromisoformat(params["end_date"]), params["months"])
    needs = backfill_dates.TrainingNeeds(**b.result["settings"]["backfill_training_needs"])
    days, note = backfill_dates.choose_dates(first, date.fromisoformat(as_of), wanted, needs)
    if note:
        b.result["notes"].append(f"{name}: {note}")
    if not days:
        b.result["scenarios"][name] = {"status": f"skipped: {note}", "dates": []}
        b.save()
        return
    dates = [d.isoformat() for d in days]
    b.say(f"{name}: {len(dates)} monthly dates {dates[0]} .. {dates[-1]}")
    if name == "backfill":
        out = b.work / "backfill.json"
        run = b.worker("--worker", "backfill", "--out", str(out), "--dates", ",".join(dates))
        data = json.loads(out.read_text()) if out.exists() else {}
        if run["code"] != 0 and not data.get("status"):
            data["status"] = f"worker exit {run['code']}; see {b.log}"
        data.setdefault("dates", dates)
        data["process_tree_peak_rss_mb"] = run["tree_peak_rss_mb"]
    else:
        data = backfill_command(b.env, b.work, b.log, b.timeout, dates)
    b.result["scenarios"][name] = data
    b.say(
        f"{name}: {data.get('status')}; fixed {data.get('fixed_s')} s, per date "
        f"{data.get('per_date_mean_s')} s, wall {data.get('wall_s')} s"
    )
    b.save()


def append_day(landing: Path) -> str:
    """One new day of extracts: the usage rows of the same weekday a week before, on the day
    after the latest, as a daily file `usage_daily_<YYYY-MM-DD>.parquet` (usage has a
    weekday pattern: a Monday made of Sunday's rows drifts by construction), and the CRM
    activities of that weekday the same way (`activities_<YYYYMMDD>.csv`, new ids), so the
    accounts' last activity does not age day after day (it would drift
    `days_since_last_activity`, which a real CRM keeps fresh). Returns the new day."""
    import duckdb

    folder = landing / "usage" / "usage_daily"
    files = sorted(folder.glob("*.parquet"))
    con = duckdb.connect()
    try:
        glob = str(folder / "*.parquet")
        last = con.execute(f"select max(usage_date) from read_parquet('{glob}')").fetchone()[0]  # type: ignore[index]
        new_day = last + timedelta(days=1)
        src = [str(f) for f in files]
        target = folder / f"usage_daily_{new_day.isoformat()}.parquet"
        con.execute(
            f"""
            copy (
                select account_id, cast(usage_date + 7 as date) as usage_date, metric, value
                from read_parquet({src!r}) where usage_date = ?
                order by account_id, metric
            ) to '{target}' (format parquet, compression zstd)
            """,
            [new_day - timedelta(days=7)],
        )
        _append_activities(con, landing, new_day)
    finally:
        con.close()
    return str(new_day.isoformat())


def _append_activities(con: Any, landing: Path, new_day: date) -> None:
    """The CRM activities of `new_day` - 7 again on `new_day`, in a file of their own."""
    folder = landing / "crm" / "activities"
    files = sorted(str(f) for f in folder.glob("*.csv"))
    if not files:
        return  # the business sends no activities (the table is optional)
    target = folder / f"activities_{new_day.strftime('%Y%m%d')}.csv"
    con.execute(
        f"""
        copy (
            select
                'b{new_day.strftime("%Y%m%d")}-' || activity_id as activity_id,
                account_id,
                activity_type,
                occurred_at + interval 7 day as occurred_at
            from read_csv({files!r}, header = true, all_varchar = false,
                          types = {{'activity_id': 'VARCHAR', 'account_id': 'VARCHAR'}})
            where cast(occurred_at as date) = ?
            order by occurred_at, activity_id
        ) to '{target}' (format csv, header, force_quote (activity_id, account_id, activity_type))
        """,
        [new_day - timedelta(days=7)],
    )
