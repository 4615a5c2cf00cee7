"""What the benchmark's results say: fixed costs apart from per-row work, the issue's targets,
the settings in effect, the markdown (bench/report.py, bench/targets.py,
bench/settings_record.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.processes import json_start
from bench.report import fixed_costs, markdown
from bench.settings_record import config_sets, non_default, tuned
from bench.targets import s_to_m_ratio, targets


def _stage(name: str, wall: float, peak: float = 100.0, **extra: Any) -> dict[str, Any]:
    return {
        "stage": name,
        "wall_s": wall,
        "cpu_s": wall,
        "peak_rss_mb": peak,
        "status": "ok",
    } | extra


def _result(size: str = "M", **scenarios: Any) -> dict[str, Any]:
    return {
        "size": size,
        "date": "2026-12-07",
        "params": {"accounts": 100, "months": 24, "champion_from": None, "business": "per_seat"},
        "command": "python -m bench.pipeline_bench --size M",
        "code": {"code": "worktree", "commit": "abc1234"},
        "machine": {
            "hostname": "vm",
            "cpu_model": "cpu",
            "cores": 2,
            "ram_gb": 24,
            "versions": {},
        },
        "load_avg_start": [0.1, 0.1, 0.1],
        "scenarios": scenarios,
        "notes": [],
    }


def _daily(parse: float | None = 2.0) -> dict[str, Any]:
    stages = [
        _stage("load", 1.0),
        _stage("freshness", 5.0),
        _stage("dbt_build", 20.0, peak=4000.0, detail={"parse_s": parse}),
        _stage("score", 4.0),
    ]
    return {"status": "completed", "stages": stages, "dbt": {"parse_s": parse},
            "total": {"wall_s": 30.0, "cpu_s": 30.0, "peak_rss_mb": 4000.0}}  # fmt: skip


def _prefect(overhead: float) -> dict[str, Any]:
    return {"exit_code": 0, "status": "completed", "wall_s": 30.0 + overhead,
            "fixed_overhead_s": overhead, "flow_stage_seconds": {"freshness": 5.0},
            "dbt_parse_s": 2.0, "cpu_s": 1.0, "peak_rss_mb": 1.0}  # fmt: skip


def test_fixed_costs_apart_from_per_row_work() -> None:
    result = _result(incremental=_daily(), prefect=_prefect(16.0), prefect_server=_prefect(6.0))
    costs = fixed_costs(result)
    assert costs["incremental"] == {
        "freshness_s": 5.0,
        "dbt_parse_s": 2.0,
        "prefect_s": None,
        "fixed_s": 7.0,
        "per_row_s": 23.0,
        "total_s": 30.0,
    }
    assert costs["prefect_server"]["fixed_s"] == 13.0  # overhead + freshness + parse
    assert costs["prefect_temporary_server_startup_s"] == 10.0
    assert costs["prefect_flow_overhead_s"] == 6.0


def test_a_run_without_parse_seconds_counts_none() -> None:
    """Before DbtReport.parse_s exists, dbt's parse is unknown, not zero."""
    costs = fixed_costs(_result(incremental=_daily(parse=None)))
    assert costs["incremental"]["dbt_parse_s"] is None and costs["incremental"]["fixed_s"] == 5.0


def test_m_targets_daily_against_the_limit() -> None:
    result = _result(first_run=_daily(), incremental=_daily(), prefect_server=_prefect(6.0))
    result["limit_wall_s"] = 4.0  # 2 x 4 + 20 = 28 s
    by_name = {t["target"]: t for t in targets("M", result)}
    daily = by_name["M daily run, plain stages (s) <= 2 x limit + 20 s"]
    assert daily["limit"] == 28.0 and daily["measured"] == 30.0 and not daily["met"]
    assert not by_name[
        "M daily run, `expansion run`, running Prefect server (s) <= 2 x limit + 20 s"
    ]["met"]
    assert by_name["M first run wall (s)"]["met"]  # 30 s <= 300 s
    assert by_name["M first run peak RSS (MB)"]["met"]  # 4,000 MB <= 8 GB


def test_l_targets_are_not_met_with_settings_tuned_by_hand() -> None:
    daily = _daily()
    daily["stages"].append(
        _stage("score", 1.0, detail={"action_list_reasons": {
            "capped_tiers": ["high_touch"], "listed_in_capped_tiers": 10,
            "listed_in_capped_tiers_without_reasons": 0}})
    )  # fmt: skip
    result = _result("L", incremental=daily)
    result["settings"] = {"non_default": {}, "config_sets": []}
    assert all(t["met"] for t in targets("L", result))
    result["settings"] = {"non_default": {"EXPANSION_DUCKDB_MEMORY_LIMIT": "12GB"}}
    wall = next(
        t for t in targets("L", result) if t["target"].startswith("L daily scoring run wall")
    )
    assert not wall["met"] and "EXPANSION_DUCKDB_MEMORY_LIMIT" in wall["note"]


def test_s_backfill_targets_fixed_costs_once() -> None:
    backfill = {"status": "completed", "dates_run": 12, "fixed_s": 30.0, "per_date_mean_s": 9.0,
                "shared_stages_repeated_per_date": ["load"], "dates_parsing_dbt": 0}  # fmt: skip
    by_name = {t["target"]: t for t in targets("S", _result("S", backfill=backfill))}
    assert by_name["S backfill: monthly dates run (completed)"]["met"]
    assert not by_name["S backfill: shared stages (load, freshness, raw gate) run again per date"][
        "met"
    ]
    assert by_name["S backfill: dates that parse dbt again"]["met"]


def test_s_to_m_ratio_against_the_latest_s_results_of_the_same_business(tmp_path: Path) -> None:
    s = _result("S", first_run={"stages": [_stage("load", 2.0), _stage("train", 50.0)]})
    s["params"]["business"] = None  # results from before --business: the default business
    (tmp_path / "2026-12-01-vm-S.json").write_text(json.dumps(s))
    m = _result("M", first_run={"stages": [_stage("load", 20.0), _stage("train", 900.0)]})
    m["params"]["business"] = None
    ratio = s_to_m_ratio(m, tmp_path)
    assert ratio["measured"] == 10.0 and ratio["met"]  # training left out
    m["params"]["business"] = "flat_tiers"
    assert s_to_m_ratio(m, tmp_path) is None


def test_markdown_holds_settings_fixed_costs_and_targets() -> None:
    result = _result(incremental=_daily(), prefect=_prefect(16.0), prefect_server=_prefect(6.0))
    result["settings"] = {
        "non_default": {"EXPANSION_DUCKDB_MEMORY_LIMIT": "12GB"},
        "source": "Settings.non_default()",
        "duckdb": {"effective": {"memory_limit": "11.1 GiB", "threads": "2"}},
        "bench_scratch_paths": {"EXPANSION_HOME": "/x"},
        "dbt_threads": 2,
    }
    result["limit_wall_s"] = 4.0
    result["fixed_costs"] = fixed_costs(result)
    result["targets"] = targets("M", result)
    text = markdown(result)
    assert "`EXPANSION_DUCKDB_MEMORY_LIMIT=12GB`" in text and "11.1 GiB" in text
    assert "| daily run (plain stages) | 5.0 | 2.0 |  | 7.0 | 23.0 | 30.0 |" in text
    assert "temporary server start-up 10.0 s" in text
    assert "Targets of issue #19" in text and "| NO |" in text


def test_settings_that_differ_from_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.settings import Settings

    values, _ = non_default(Settings(dbt_threads=3, locale="ja"))
    assert values["EXPANSION_DBT_THREADS"] == "3" and values["EXPANSION_LOCALE"] == "ja"
    assert "EXPANSION_TARGET" not in values
    record = {"non_default": values, "config_sets": ["EXPANSION_LOCALE"]}
    assert "EXPANSION_DBT_THREADS" in tuned(record) and "EXPANSION_LOCALE" not in tuned(record)


def test_config_sets_names_what_a_settings_file_sets(tmp_path: Path) -> None:
    config = tmp_path / "expansion.toml"
    config.write_text('reporting_currency = "JPY"\nlocale = "ja"\n')
    assert config_sets(str(config)) == ["EXPANSION_LOCALE", "EXPANSION_REPORTING_CURRENCY"]
    assert config_sets(None) == []


def test_json_after_a_commands_progress_lines() -> None:
    text = 'backfilling 2 date(s): 2026-09-30, 2026-10-31\n{"dates": []}\n'
    assert json.loads(text[json_start(text) :]) == {"dates": []}
    with pytest.raises(ValueError):
        json_start("no json here\n")


def test_a_second_run_of_the_day_keeps_the_first_results(tmp_path) -> None:
    from bench.pipeline_bench import free_stem

    assert free_stem(tmp_path, "2026-12-07-vm-M") == tmp_path / "2026-12-07-vm-M"
    (tmp_path / "2026-12-07-vm-M.json").write_text("{}")
    assert free_stem(tmp_path, "2026-12-07-vm-M") == tmp_path / "2026-12-07-vm-M-2"
    (tmp_path / "2026-12-07-vm-M-2.md").write_text("")
    assert free_stem(tmp_path, "2026-12-07-vm-M") == tmp_path / "2026-12-07-vm-M-3"
