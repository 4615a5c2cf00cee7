"""Pipeline benchmark: demo data at a named size, the pipeline's stages timed one by one, a
daily incremental run, the limit (the least work a scoring run needs) measured beside it, the
fixed costs apart from the per-row work, and a monthly backfill.

    .venv/bin/python -m bench.pipeline_bench --size S          # or: make bench SIZE=S
    .venv/bin/python -m bench.pipeline_bench --accounts 2000 --months 12   # a quick custom size
    .venv/bin/python -m bench.pipeline_bench --size S --business config/examples/flat_tiers/expansion.toml

Sizes: S = 10k accounts x 24 months, M = 100k x 24, L = 1M x 3 months scored with the champion
trained at S (run S first; its champion is kept in bench/work/champions/S/).

Scenarios, each in its own fresh Python process (so imports, caches and peak memory of one do
not leak into the next), all on one scratch home `bench/work/<tag>/` (never state/ or data/):

1. generate    the demo extracts of the business (not part of the pipeline; timed for reference);
2. first_run   every stage of flows.pipeline.STAGES (the flow's own list, run by its own
               run_pipeline: lock, recovery, run record) from an empty warehouse, as plain
               functions (no Prefect);
3. incremental one new day of usage extracts (the rows of the same weekday a week before, the
               CRM and billing extracts unchanged), the same stages again, champion reused;
4. limit       one DuckDB query for the champion's features of all accounts at the incremental
               run's as_of straight from raw.*, computed as the marts compute them, LightGBM
               predict, the scores written to a DuckDB table (bench/limit.py);
5. prefect     another new day, then the real command (`expansion run --json`) with Prefect's
               temporary API server; its wall minus its stage timings is Prefect's overhead;
6. prefect_server  the same against a Prefect server started for it (as a deployment runs);
7. train       (only when asked) training alone, forced, on the marts of the last run;
8. backfill    a 12-date monthly backfill through flows.backfill.run_backfill (no Prefect):
               fixed (shared stages, once) and per-date time;
9. backfill_prefect  (only when asked) the same dates through `expansion backfill`.

Per stage: wall_s, cpu_s (process + children, all threads), peak_rss_mb (the kernel's
high-water mark of the process, reset before each stage), rows in/out and rows/s. Every
results file records the settings in effect (bench/settings_record.py). Writes
bench/results/<date>-<host>-<tag>.json and .md and prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.processes import BENCH_DIR, WORK_DIR, source_tree
from bench.workers import END_DATE

RESULTS_DIR = BENCH_DIR / "results"
CHAMPIONS_DIR = WORK_DIR / "champions"

SIZES: dict[str, dict[str, Any]] = {
    "S": {"accounts": 10_000, "months": 24},
    "M": {"accounts": 100_000, "months": 24},
    "L": {"accounts": 1_000_000, "months": 3, "champion_from": "S"},
}
DEFAULT_SCENARIOS = "first_run,incremental,limit,prefect,prefect_server,backfill"


def business_label(config: str | None) -> str:
    """A short name for a business's settings file, for scratch and results names: its folder
    for `<folder>/expansion.toml` (config/examples/flat_tiers/expansion.toml: flat_tiers),
    else the file's stem."""
    if not config:
        return ""
    path = Path(config)
    return path.parent.name if path.stem == "expansion" else path.stem


def worker_env(home: Path, landing: Path, oracle: Path, src: Path, config: Path | None) -> dict:
    """The environment of every worker and command: the scratch home, the code measured first
    on the path, the business's settings file, Prefect's state under the scratch home."""
    env = dict(os.environ)
    env.pop("EXPANSION_CONFIG", None)  # the business is --business, nothing else
    env.update(
        EXPANSION_HOME=str(home),
        EXPANSION_LANDING_DIR=str(landing),
        EXPANSION_ORACLE_DIR=str(oracle),
        OMP_WAIT_POLICY=env.get("OMP_WAIT_POLICY", "PASSIVE"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=env.get(
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90"
        ),
        PREFECT_HOME=str(home / "prefect"),
        PYTHONPATH=str(src),  # `expansion` and the workers import the code measured
        PYTHONUNBUFFERED="1",
    )
    if config is not None:
        env["EXPANSION_CONFIG"] = str(config)
    env.pop("PREFECT_API_URL", None)  # the Prefect scenario measures the temporary server
    return env


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", choices=sorted(SIZES), help="named size (S, M, L)")
    ap.add_argument("--accounts", type=int, help="accounts (overrides the size)")
    ap.add_argument("--months", type=int, help="months of history (overrides the size)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--tag", help="name of the scratch dir and results (default: size[-business])")
    ap.add_argument(
        "--business",
        help="a business's settings file (EXPANSION_CONFIG for every scenario, e.g. "
        "config/examples/flat_tiers/expansion.toml); the demo data generated is that "
        "business's (the demo business declaring its business file)",
    )
    ap.add_argument(
        "--scenarios",
        default=DEFAULT_SCENARIOS,
        help=f"comma-separated subset of {','.join(scenarios.SCENARIOS)} (default "
        f"{DEFAULT_SCENARIOS}; train: a forced training alone, for runs that reuse a "
        "champion; backfill_prefect: the backfill through `expansion backfill`)",
    )
    ap.add_argument("--backfill-dates", type=int, default=12, help="monthly dates to backfill")
    ap.add_argument("--champion-from", help="registry dir whose champion to score with (L)")
    ap.add_argument(
        "--code",
        choices=["worktree", "head"],
        default="worktree",
        help="run this checkout as it is, or its last commit (exported to bench/work/src-*)",
    )
    ap.add_argument(
        "--skip-stages",
        default="",
        help="first_run only: stages not to run (load, freshness or a gate), e.g. to go on "
        "from a warehouse that a killed run loaded (with --reuse-data --keep-home)",
    )
    ap.add_argument(
        "--keep-home",
        action="store_true",
        help="with --reuse-data: keep the scratch home (warehouse, models) as it is",
    )
    ap.add_argument("--reuse-data", action="store_true", help="keep generated extracts if there")
    ap.add_argument("--timeout-min", type=float, default=40, help="per scenario")
    ap.add_argument("--clean", action="store_true", help="delete the scratch data afterwards")
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--results-suffix", default="", help="appended to the results file name")
    ap.add_argument("--no-save", action="store_true", help="print only, write no results file")
    # worker modes (internal)
    workers = ["pipeline", "generate", "limit", "settings", "backfill"]
    ap.add_argument("--worker", choices=workers, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--scenario", help=argparse.SUPPRESS)
    ap.add_argument("--as-of", help=argparse.SUPPRESS)
    ap.add_argument("--dates", help=argparse.SUPPRESS)
    return ap


def free_stem(folder: Path, name: str) -> Path:
    """`folder/name`, or `name-2`, `-3`, ... when an earlier run of the same day, machine and
    size already wrote its results there (they are kept, not overwritten)."""
    stem, n = folder / name, 1
    while Path(f"{stem}.json").exists() or Path(f"{stem}.md").exists():
        n += 1
        stem = folder / f"{name}-{n}"
    return stem


def run_worker_mode(a: argparse.Namespace) -> int:
    from bench import workers

    if a.worker == "pipeline":
        workers.worker_pipeline(a.scenario, a.out)
    elif a.worker == "generate":
        workers.worker_generate(a.out, a.accounts, a.months, a.seed)
    elif a.worker == "limit":
        workers.worker_limit(a.out, a.as_of)
    elif a.worker == "settings":
        workers.worker_settings(a.out)
    elif a.worker == "backfill":
        workers.worker_backfill(a.out, a.dates.split(","))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    a = ap.parse_args(argv)
    if a.worker:
        return run_worker_mode(a)

    from bench.measure import load_average, machine_facts
    from bench.report import fixed_costs, markdown
    from bench.targets import targets

    preset = dict(SIZES.get(a.size or "", {}))
    accounts = a.accounts or preset.get("accounts")
    months = a.months or preset.get("months")
    if not accounts or not months:
        ap.error("give --size or --accounts and --months")
    unknown = [
        s for s in a.scenarios.split(",") if s.strip() and s.strip() not in scenarios.SCENARIOS
    ]
    if unknown:
        ap.error(f"unknown scenarios {unknown}; known: {', '.join(scenarios.SCENARIOS)}")
    config = Path(a.business).expanduser().resolve() if a.business else None
    if config is not None and not config.is_file():
        ap.error(f"--business {a.business}: no such settings file")
    size = a.size if (a.size and not a.accounts and not a.months) else f"{accounts}x{months}"
    label = business_label(a.business)
    tag = a.tag or (f"{size}-{label}" if label else size)
    work = WORK_DIR / tag
    home, landing, oracle = work / "home", work / "landing", work / "oracle"
    src, code_info = source_tree(a.code)
    env = worker_env(home, landing, oracle, src, config)
    wanted_scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    champions = CHAMPIONS_DIR / (f"S-{label}" if label else "S")
    champion_from = a.champion_from or (str(champions) if preset.get("champion_from") else None)
    command = "python -m bench.pipeline_bench " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )

    marker = work / "generated.json"
    wanted = {
        "accounts": accounts,
        "months": months,
        "seed": a.seed,
        "end_date": END_DATE.isoformat(),
        "business_config": str(config) if config else None,
    }
    reuse = a.reuse_data and marker.exists() and json.loads(marker.read_text()) == wanted
    if work.exists() and not reuse:
        shutil.rmtree(work)
    elif reuse and not a.keep_home:
        shutil.rmtree(home, ignore_errors=True)
        for extra in (landing / "usage" / "usage_daily").glob("usage_daily_????-??-??.parquet"):
            extra.unlink()
    work.mkdir(parents=True, exist_ok=True)
    if champion_from:
        found = Path(champion_from)
        if not found.is_dir() or not any(found.iterdir()):
            print(f"no champion in {found}: run the S benchmark first", file=sys.stderr)
            return 2
        shutil.copytree(found, home / "models", dirs_exist_ok=True)

    result: dict[str, Any] = {
        "benchmark": "pipeline_bench",
        "schema_version": 2,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "size": size,
        "params": {**wanted, "champion_from": champion_from},
        "command": command,
        "code": code_info,
        "machine": machine_facts(),
        "load_avg_start": load_average(),
        "scenarios": {},
        "notes": [],
    }

    stems: list[Path] = []  # this run's results file, chosen at its first save

    def save() -> None:
        result["load_avg_end"] = load_average()
        result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        result["fixed_costs"] = fixed_costs(result)
        if a.no_save:
            return
        a.results_dir.mkdir(parents=True, exist_ok=True)
        if not stems:  # chosen once: this run's later saves rewrite its own file
            host = result["machine"]["hostname"].split(".")[0]
            name = f"{result['date']}-{host}-{tag}{a.results_suffix}"
            stems.append(free_stem(a.results_dir, name))
        Path(f"{stems[0]}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        Path(f"{stems[0]}.md").write_text(markdown(result))

    b = scenarios.Bench(
        env=env,
        work=work,
        log=work / "bench.log",
        timeout=a.timeout_min * 60,
        result=result,
        save=save,
        skip_stages=a.skip_stages,
    )
    result["settings"] = scenarios.settings(b)
    result["params"]["business"] = result["settings"]["demo_business"]
    b.stage_names = tuple(result["settings"].pop("stage_names"))
    result["stage_list"] = list(b.stage_names)  # flows.pipeline.STAGES of the code measured
    b.say(
        f"business {result['params']['business']}; settings that differ from their defaults: "
        f"{result['settings']['non_default'] or 'none'}"
    )
    if not reuse and not generate(b, accounts, months, a.seed):
        return 1
    marker.write_text(json.dumps(wanted))
    size_mb = sum(f.stat().st_size for f in landing.rglob("*") if f.is_file()) / 2**20
    result["landing_mb"] = round(size_mb, 1)

    ok = run_scenarios(b, wanted_scenarios, size, champion_from, a.backfill_dates, champions)
    result["targets"] = targets(size, result)
    save()
    print()
    print(markdown(result))
    if a.clean:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


def generate(b: scenarios.Bench, accounts: int, months: int, seed: int) -> bool:
    b.say(f"generating {accounts:,} accounts x {months} months into {b.landing}")
    out = b.work / "generate.json"
    code = b.worker(
        "--worker", "generate", "--out", str(out), "--accounts", str(accounts),
        "--months", str(months), "--seed", str(seed),
    )["code"]  # fmt: skip
    if code != 0 or not out.exists():
        b.say(f"generation failed (exit {code}); see {b.log}")
        b.result["generate"] = {"status": f"failed (exit {code})"}
        b.save()
        return False
    gen = json.loads(out.read_text())
    b.result["generate"] = gen
    b.say(f"generated {gen['rows_out']:,} rows of {gen['business']} in {gen['wall_s']:.1f} s")
    return True


def run_scenarios(
    b: scenarios.Bench,
    wanted: list[str],
    size: str,
    champion_from: str | None,
    backfill_dates: int,
    champions: Path,
) -> bool:
    """The scenarios asked for, in their fixed order; a pipeline scenario that does not
    complete stops the ones that build on it."""
    result = b.result
    ok = True
    if "first_run" in wanted:
        ok = scenarios.pipeline(b, "first_run")
        if ok and size == "S" and not champion_from:
            shutil.rmtree(champions, ignore_errors=True)
            shutil.copytree(b.home / "models", champions)
            result["notes"].append(f"champion kept for size L in {champions}")
    as_of = result["scenarios"].get("first_run", {}).get("as_of")
    if ok and "incremental" in wanted:
        day = scenarios.append_day(b.landing)
        result["incremental_day"] = day
        b.say(f"incremental: appended usage for {day}")
        ok = scenarios.pipeline(b, "incremental")
        as_of = result["scenarios"]["incremental"].get("as_of", as_of)
    if ok and "limit" in wanted and as_of:
        scenarios.limit(b, as_of)
    for name in ("prefect", "prefect_server"):
        if ok and name in wanted:
            scenarios.prefect(b, name)
    if "train" in wanted and (b.home / "warehouse.duckdb").exists():
        # training alone on the marts of the last run, forced: the first run's training time
        # when the first run itself reused a champion (M and L with --champion-from)
        scenarios.pipeline(b, "train")
    for name in ("backfill", "backfill_prefect"):
        if ok and name in wanted and as_of:
            scenarios.backfill(b, name, as_of, backfill_dates)
    return ok


if __name__ == "__main__":
    sys.exit(main())
