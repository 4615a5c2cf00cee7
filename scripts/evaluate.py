"""Check the champion model against the bars of the model issue (`make evaluate`).

    .venv/bin/python scripts/evaluate.py [--warehouse PATH] [--registry PATH] [--oracle PATH]

Reads the champion from the registry, its backtest test-row predictions (kept with the model;
re-computed from marts.account_snapshots for models saved before they were kept) and the demo
generator's oracle, and prints per backtest cut-off: ROC AUC, the oracle's ROC AUC on the same
rows, the logistic baseline's ROC AUC, PR AUC, Brier, ECE (10 bins), top-decile lift and
capture. On the latest cut-off the champion must reach `acceptance.min_oracle_auc_ratio` x the
oracle's ROC AUC, beat the baseline and have ECE <= `acceptance.max_ece` (models/params.yaml).

The LAST line of stdout is one JSON object (latest cut-off, primary target). Exit codes:
0 all bars met, 1 a bar failed, 2 nothing to evaluate (no champion, no data, no oracle).
Defaults come from flows.settings (EXPANSION_HOME, ...); the oracle from EXPANSION_ORACLE_DIR
(default: the demo's data/oracle beside the landing zone).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from flows.registry import champion_version, load_model
from flows.settings import get_settings
from flows.warehouse import Warehouse
from models.backtest import run_backtest
from models.evaluate import acceptance_failures, backtest_table, binary_metrics, oracle_on_rows
from models.features import training_frame
from models.params import load_params
from models.train import TrainedModel

ORACLE_FILE = "expansion_oracle.parquet"
TABLE_COLUMNS = (
    ("cutoff", "cut-off", "{}"),
    ("n", "rows", "{:,}"),
    ("n_pos", "pos", "{:,}"),
    ("auc", "auc", "{:.4f}"),
    ("oracle_auc", "oracle_auc", "{:.4f}"),
    ("auc_ratio", "auc/oracle", "{:.3f}"),
    ("baseline_auc", "baseline_auc", "{:.4f}"),
    ("pr_auc", "pr_auc", "{:.4f}"),
    ("brier", "brier", "{:.4f}"),
    ("ece", "ece", "{:.4f}"),
    ("top_decile_lift", "top_decile_lift", "{:.2f}"),
    ("capture", "capture", "{:.1%}"),
)


class NothingToEvaluate(RuntimeError):
    """No champion, no snapshots or no oracle: exit code 2."""


def _args(argv: list[str] | None) -> argparse.Namespace:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", type=Path, default=settings.warehouse)
    parser.add_argument("--registry", type=Path, default=settings.registry)
    parser.add_argument(
        "--oracle",
        type=Path,
        default=Path(os.environ.get("EXPANSION_ORACLE_DIR", settings.landing_dir.parent / "oracle"))
        / ORACLE_FILE,
    )
    parser.add_argument("--version", help="model version (default: the champion)")
    return parser.parse_args(argv)


def _predictions(model: TrainedModel, warehouse: Path) -> pd.DataFrame:
    """The model's stored backtest predictions, or the backtest re-run with its params."""
    if model.backtest_predictions is not None and not model.backtest_predictions.empty:
        return model.backtest_predictions
    latest = model.latest_cutoff()
    if latest is None:
        raise NothingToEvaluate(f"model {model.version} has no backtest (trained without one)")
    if not warehouse.is_file():
        raise NothingToEvaluate(f"no warehouse at {warehouse} to re-run the backtest")
    print(f"model {model.version} kept no backtest predictions: re-running its backtest")
    snapshots = Warehouse(warehouse).read_frame(
        "select * from marts.account_features where snapshot_date <= ?", [latest]
    )
    _, predictions = run_backtest(training_frame(snapshots, model.params), model.params)
    return predictions


def _check_rows(table: pd.DataFrame, model: TrainedModel) -> list[str]:
    """Warnings when the predictions disagree with the model's stored backtest metrics."""
    notes = []
    for _, row in table.iterrows():
        stored = model.metrics_at(row["cutoff"])
        if stored is None:
            notes.append(f"no stored backtest record for cut-off {row['cutoff']}")
        elif not math.isclose(float(stored["roc_auc"]), row["auc"], abs_tol=1e-9):
            notes.append(
                f"cut-off {row['cutoff']}: ROC AUC {row['auc']:.4f} differs from the stored "
                f"{stored['roc_auc']:.4f}"
            )
    return notes


def pooled(
    predictions: pd.DataFrame, target: str, oracle: pd.DataFrame, baseline: str
) -> dict[str, float]:
    """ROC AUC of the model, the baseline and the oracle on every backtest row of `target`,
    all cut-offs together (more rows than one cut-off, so less noise)."""
    rows = predictions.loc[predictions["target"] == target]
    mine = rows.loc[rows["model"] == "lightgbm"]
    base = rows.loc[rows["model"] == baseline]
    auc = binary_metrics(mine["y"], mine["p"])["roc_auc"]
    p_oracle = oracle_on_rows(mine, oracle, "p_expansion_90d").to_numpy()
    oracle_auc = binary_metrics(mine["y"].to_numpy(), p_oracle)["roc_auc"]
    base_auc = (
        binary_metrics(base["y"], base["p"], is_probability=False)["roc_auc"]
        if not base.empty
        else math.nan
    )
    return {
        "pooled_n": float(len(mine)),
        "pooled_auc": auc,
        "pooled_oracle_auc": oracle_auc,
        "pooled_auc_ratio": auc / oracle_auc if oracle_auc > 0 else math.nan,
        "pooled_baseline_auc": base_auc,
    }


def format_table(table: pd.DataFrame) -> str:
    """Fixed-width text table of a backtest_table."""
    header = [title for _, title, _ in TABLE_COLUMNS]
    body = []
    for _, row in table.iterrows():
        cells = []
        for column, _, fmt in TABLE_COLUMNS:
            value = row[column]
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            cells.append("-" if missing else fmt.format(value))
        body.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _json_value(value.item())
    return value


def evaluate(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """Print the table and bars; return the summary record and the exit code."""
    params = load_params(get_settings().params_path)
    bars = params.acceptance
    version = args.version or champion_version(args.registry)
    if version is None:
        raise NothingToEvaluate(f"no champion in {args.registry}: run the pipeline first")
    model = load_model(args.registry, version)
    if not args.oracle.is_file():
        raise NothingToEvaluate(
            f"no oracle at {args.oracle}: the bars compare with the demo generator's oracle"
        )
    oracle = pd.read_parquet(args.oracle)
    predictions = _predictions(model, args.warehouse)
    target = model.params.primary_target
    baseline = bars.must_beat_baseline or "logistic"
    table = backtest_table(predictions, target, oracle, baseline=baseline, bins=bars.ece_bins)
    if table.empty:
        raise NothingToEvaluate(f"model {version} has no backtest rows for target {target!r}")
    print(
        f"model {version} (trained {model.trained_at or '?'}, code {model.code_version or '?'}); "
        f"target {target}; baseline {baseline}; backtest per cut-off:"
    )
    print(format_table(table))
    for note in _check_rows(table, model):
        print(f"warning: {note}")
    together = pooled(predictions, target, oracle, baseline)
    print(
        f"pooled over the {len(table)} cut-offs ({together['pooled_n']:.0f} rows): ROC AUC "
        f"{together['pooled_auc']:.4f}, oracle {together['pooled_oracle_auc']:.4f} (ratio "
        f"{together['pooled_auc_ratio']:.3f}), {baseline} {together['pooled_baseline_auc']:.4f}"
    )
    latest = table.iloc[-1]
    failures = acceptance_failures(
        latest,
        bars.min_oracle_auc_ratio,
        bars.max_ece,
        must_beat_baseline=bars.must_beat_baseline is not None,
    )
    print(
        f"bars on the latest cut-off {latest['cutoff']}: ROC AUC >= "
        f"{bars.min_oracle_auc_ratio} x oracle ({bars.min_oracle_auc_ratio * latest['oracle_auc']:.4f})"
        + (f", > {baseline} ({latest['baseline_auc']:.4f})" if bars.must_beat_baseline else "")
        + f", ECE <= {bars.max_ece}"
    )
    for failure in failures:
        print(f"FAIL: {failure}")
    print("PASS: all bars met" if not failures else f"{len(failures)} bar(s) failed")
    record = {
        "model_version": version,
        "target": target,
        "cutoff": latest["cutoff"],
        **{k: _json_value(latest[k]) for k in table.columns if k != "cutoff"},
        **{k: _json_value(v) for k, v in together.items()},
        "passed": not failures,
        "failures": failures,
    }
    return record, (1 if failures else 0)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    try:
        record, code = evaluate(args)
    except (NothingToEvaluate, FileNotFoundError) as exc:
        record, code = {"passed": False, "failures": [str(exc)]}, 2
        print(f"error: {exc}", file=sys.stderr)
    print(json.dumps(record, sort_keys=False))
    return code


if __name__ == "__main__":
    sys.exit(main())
