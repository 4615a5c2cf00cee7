"""Judge the champion on its backtest, or a past model on what happened after it scored
(`make evaluate`).

    .venv/bin/python scripts/evaluate.py [--warehouse PATH] [--registry PATH] [--oracle PATH]
                                         [--version V] [--as-of DATE]

Backtest (default): reads the champion (or `--version`) from the registry and its backtest
test-row predictions (kept with the model; re-computed from marts.account_features for models
saved before they were kept), prints per cut-off ROC AUC, the logistic baseline's, PR AUC,
Brier, ECE, top-decile lift and capture (and the oracle's ROC AUC when the demo generator's
oracle file exists), then the figures pooled over the cut-offs, each with its bootstrap
confidence interval, and the bars of `models.acceptance` (the same the pipeline promotes on and
the model report shows): ROC AUC and Brier (`quality:`), ECE, beating the baseline and, with an
oracle, `acceptance.min_oracle_auc_ratio` x the oracle's ROC AUC (models/params.yaml). A bar
fails only when its whole interval is on the wrong side. With the model's action-list figures
(`ranking_metrics`), the first 100 accounts' hit rate and MRR captured, averaged over the
cut-offs, for the default ranking and ranking by probability.

`--as-of DATE`: the model that scored at DATE (scores.account_score_history) on what happened
after: the labels of marts.account_features at snapshot_date = DATE (complete once DATE + the
label horizon is within the data): ROC AUC, Brier and ECE with their intervals, and the hit
rate of the first 100 accounts by action_rank (and by p_expansion).

The LAST line of stdout is one JSON object. Exit codes: 0 no bar failed, 1 a bar failed,
2 nothing to evaluate (no champion, no data, no scores at DATE, labels not complete yet).
Defaults come from flows.settings (EXPANSION_HOME, ...); the oracle from EXPANSION_ORACLE_DIR
(default: the demo's data/oracle beside the landing zone).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flows.registry import champion_version, list_models, load_model
from flows.settings import get_settings
from flows.warehouse import Warehouse
from models.acceptance import Assessment, Estimate, assess, bootstrap
from models.arrays import FloatArray
from models.backtest import run_backtest
from models.evaluate import backtest_table
from models.features import training_frame
from models.params import Params, load_params
from models.ranking import ranking_summary, ranking_table
from models.train import TrainedModel

ORACLE_FILE = "expansion_oracle.parquet"
TOP_N = 100  # the action-list figures are for the first 100 accounts
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
# Pooled figures: name in Assessment.figures, label, format.
FIGURES = (
    ("roc_auc", "ROC AUC", ".3f"),
    ("baseline_roc_auc", "{baseline} ROC AUC", ".3f"),
    ("oracle_roc_auc", "oracle ROC AUC", ".3f"),
    ("oracle_ratio", "ROC AUC / oracle", ".3f"),
    ("brier", "Brier", ".4f"),
    ("ece", "ECE", ".4f"),
    ("lift_top_decile", "top-decile lift", ".2f"),
)


class NothingToEvaluate(RuntimeError):
    """No champion, no data, no scores at the date or labels not complete yet: exit code 2."""


def _args(argv: list[str] | None) -> argparse.Namespace:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--warehouse", type=Path, default=settings.warehouse)
    parser.add_argument("--registry", type=Path, default=settings.registry)
    parser.add_argument(
        "--oracle",
        type=Path,
        default=Path(os.environ.get("EXPANSION_ORACLE_DIR", settings.landing_dir.parent / "oracle"))
        / ORACLE_FILE,
        help="the demo generator's true probabilities (the oracle bar when the file exists)",
    )
    parser.add_argument("--version", help="model version (default: the champion)")
    parser.add_argument(
        "--as-of",
        type=date.fromisoformat,
        help="evaluate the scores of this date (YYYY-MM-DD) on what happened after",
    )
    return parser.parse_args(argv)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if hasattr(value, "item"):
        return _json_value(value.item())
    return value


def format_table(table: pd.DataFrame, columns: tuple[tuple[str, str, str], ...]) -> str:
    """Fixed-width text table of the given (column, title, format) columns."""
    header = [title for _, title, _ in columns]
    body = []
    for _, row in table.iterrows():
        cells = []
        for column, _, fmt in columns:
            value = row.get(column)
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            cells.append("-" if missing else fmt.format(value))
        body.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def print_assessment(assessment: Assessment, where: str) -> None:
    """The pooled figures with their intervals, then each bar with its status."""
    a = assessment
    print(
        f"{where} ({a.n:,} rows, {a.n_pos:,} positives); {a.confidence:.0%} intervals from "
        f"{a.resamples:,} bootstrap resamples{' within each cut-off' if len(a.cutoffs) > 1 else ''}:"
    )
    for name, label, spec in FIGURES:
        if name in a.figures:
            text = label.format(baseline=a.baseline or "baseline")
            print(f"  {text:<18} {a.figures[name].format(spec)}")
    print('bars (failed only when the whole interval is on the wrong side; "not shown" passes):')
    for bar in a.bars:
        print(f"  {bar.status:<9}  {bar.statement()}")
    for note in a.notes:
        print(f"  note: {note}")
    print("PASS: no bar failed" if a.passed else f"FAIL: {len(a.failures)} bar(s) failed")


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


def action_list_figures(model: TrainedModel, params: Params) -> dict[str, Any] | None:
    """The action list's figures on the backtest (models.ranking: per cut-off, default ranking
    beside probability at N = `action_list.hit_rate_at`), printed; their means over the
    cut-offs for the JSON line (None when the model kept none)."""
    metrics = getattr(model, "ranking_metrics", None)
    if not metrics:
        return None
    n = params.action_list.hit_rate_at
    table = ranking_table(metrics, f"top_{n}", mean="mean")
    print(f"action list, first {n} accounts: default ranking vs by probability")
    columns = (
        ("cutoff", "cut-off", "{}"),
        ("n_rows", "rows", "{:,.0f}"),
        ("hit_rate_default", "hit rate", "{:.1%}"),
        ("hit_rate_probability", "by p", "{:.1%}"),
        ("hit_rate_ratio", "ratio", "{:.2f}"),
        ("expansion_mrr_captured_default", "MRR found", "{:,.0f}"),
        ("expansion_mrr_captured_probability", "by p", "{:,.0f}"),
        ("expected_mrr_captured_default", "expected MRR", "{:,.0f}"),
        ("expected_mrr_captured_probability", "by p", "{:,.0f}"),
    )
    print(format_table(table, columns))
    summary = ranking_summary(metrics, params, getattr(model, "action_value_weight", None))
    print(
        f"default / probability hit rate {summary['hit_rate_ratio']:.2f} (bar "
        f"{params.action_list.min_hit_rate_ratio}: "
        + ("met" if summary["hit_rate_ratio_met"] else "NOT met")
        + ")"
    )
    return summary


def evaluate_backtest(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """Print the per-cut-off table, pooled figures and bars; return the record and exit code."""
    version = args.version or champion_version(args.registry)
    if version is None:
        raise NothingToEvaluate(f"no champion in {args.registry}: run the pipeline first")
    model = load_model(args.registry, version)
    params = model.params
    oracle = pd.read_parquet(args.oracle) if args.oracle.is_file() else None
    predictions = _predictions(model, args.warehouse)
    target = params.primary_target
    baseline = params.acceptance.must_beat_baseline or "logistic"
    table = backtest_table(
        predictions, target, oracle, baseline=baseline, bins=params.acceptance.ece_bins
    )
    if table.empty:
        raise NothingToEvaluate(f"model {version} has no backtest rows for target {target!r}")
    print(
        f"model {version} (trained {model.trained_at or '?'}, code {model.code_version or '?'}); "
        f"target {target}; baseline {baseline}; "
        + (f"oracle {args.oracle}" if oracle is not None else f"no oracle ({args.oracle} absent)")
    )
    columns = tuple(c for c in TABLE_COLUMNS if oracle is not None or "oracle" not in c[0])
    columns = tuple(c for c in columns if oracle is not None or c[0] != "auc_ratio")
    print(format_table(table, columns))
    for note in _check_rows(table, model):
        print(f"warning: {note}")
    assessment = assess(predictions, params, oracle=oracle)
    print_assessment(assessment, f"pooled over the {len(table)} cut-offs")
    action_list = action_list_figures(model, params)
    record = {
        "model_version": version,
        "mode": "backtest",
        "oracle": oracle is not None,
        **assessment.record(),
        "per_cutoff": table.loc[:, [c for c, _, _ in columns]].to_dict(orient="records"),
        "action_list": action_list,
    }
    return _json_value(record), (0 if assessment.passed else 1)


def _scores_at(warehouse: Path, day: date) -> pd.DataFrame:
    if not warehouse.is_file():
        raise NothingToEvaluate(f"no warehouse at {warehouse}")
    db = Warehouse(warehouse)
    try:
        scores = db.read_frame("select * from scores.account_score_history where as_of = ?", [day])
    except Exception as exc:  # the table is made by the first scoring run
        raise NothingToEvaluate(f"no scores.account_score_history in {warehouse}: {exc}") from exc
    if scores.empty:
        raise NothingToEvaluate(
            f"no scores at {day} in scores.account_score_history ({warehouse}); score that date "
            "first (expansion run --as-of, or expansion backfill)"
        )
    return scores


def _params_of(registry: Path, versions: list[str]) -> tuple[Params, str]:
    """The params of the model that scored (the newest of them), else the params file."""
    known = set(list_models(registry)["version"]) if registry.is_dir() else set()
    for version in sorted(versions, reverse=True):
        if version in known:
            return load_model(registry, version).params, f"model {version}"
    return load_params(get_settings().params_path), "the params file (model not in the registry)"


def hit_rate(hits: FloatArray, params: Params) -> Estimate:
    """The share of 1s among `hits` (the first accounts of a list) with its interval."""

    def rate(W: np.ndarray[Any, np.dtype[np.float64]]) -> dict[str, FloatArray]:
        return {"hit_rate": np.asarray(W @ hits) / W.sum(axis=1)}

    acc = params.acceptance
    return bootstrap(np.zeros(len(hits)), rate, acc.resamples, acc.seed, acc.confidence)["hit_rate"]


def evaluate_as_of(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """The scores of one date against the labels of that date's snapshot."""
    day: date = args.as_of
    scores = _scores_at(args.warehouse, day)
    versions = sorted(scores["model_version"].dropna().astype(str).unique())
    params, source = _params_of(args.registry, versions)
    labels = list(params.targets.values())
    snapshot = Warehouse(args.warehouse).read_frame(
        "select account_id, is_label_complete, "
        + ", ".join(labels)
        + " from marts.account_features where snapshot_date = ? and is_active",
        [day],
    )
    complete = snapshot.loc[snapshot["is_label_complete"].fillna(False).astype(bool)]
    if complete.empty:
        until = pd.Timestamp(day) + pd.Timedelta(days=params.label_horizon_days)
        raise NothingToEvaluate(
            f"the labels of {day} are not complete: marts.account_features has "
            f"{len(snapshot):,} active rows at snapshot_date {day}, none with is_label_complete; "
            f"they need data up to {until.date()} ({params.label_horizon_days}-day horizon)"
        )
    scores = scores.assign(account_id=scores["account_id"].astype(str))
    complete = complete.assign(account_id=complete["account_id"].astype(str))
    rows = scores.merge(complete, on="account_id", how="inner")
    frames = [
        pd.DataFrame(
            {
                "cutoff": day.isoformat(),
                "target": target,
                "model": "lightgbm",
                "account_id": rows["account_id"],
                "y": rows[label].fillna(False).astype(np.int8),
                "p": rows[f"p_{target}"].astype(float),
            }
        )
        for target, label in params.targets.items()
        if f"p_{target}" in rows.columns and rows[f"p_{target}"].notna().all()
    ]
    predictions = pd.concat(frames, ignore_index=True)
    print(
        f"scores of {day} by {', '.join(versions) or '?'} ({len(scores):,} accounts, "
        f"{len(rows):,} with complete labels; bars of {source}); target {params.primary_target}"
    )
    assessment = assess(predictions, params)
    print_assessment(
        assessment, f"what happened in the {params.label_horizon_days} days after {day}"
    )
    label = params.targets[params.primary_target]
    y = rows[label].fillna(False).to_numpy(dtype=np.float64)
    lists = {}
    for name, column, ascending in (
        ("action_rank", "action_rank", True),
        ("p_expansion", f"p_{params.primary_target}", False),
    ):
        ranked = rows.loc[rows[column].notna()].sort_values(column, ascending=ascending)
        first = ranked.head(TOP_N).index
        hits = y[rows.index.get_indexer(first)]
        if not len(hits):
            continue
        est = hit_rate(hits, params)
        lists[name] = {"n": len(hits), **est.as_dict()}
        print(
            f"first {len(hits)} by {name}: hit rate {est.format('.1%')} (base rate {y.mean():.1%})"
        )
    record = {
        "model_version": versions[0] if len(versions) == 1 else versions,
        "mode": "as_of",
        "as_of": day.isoformat(),
        "n_scored": len(scores),
        **assessment.record(),
        "first_100": lists,
    }
    return _json_value(record), (0 if assessment.passed else 1)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    try:
        record, code = evaluate_as_of(args) if args.as_of else evaluate_backtest(args)
    except (NothingToEvaluate, FileNotFoundError) as exc:
        record, code = {"passed": False, "failures": [str(exc)]}, 2
        print(f"error: {exc}", file=sys.stderr)
    print(json.dumps(record, sort_keys=False))
    return code


if __name__ == "__main__":
    sys.exit(main())
