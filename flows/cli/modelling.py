"""The model commands: train, score, the model report, explain an account, roll back, and
list the registry's models."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from flows.cli.app import (
    AsOf,
    app,
    console,
    err,
    guarded,
    latest_snapshot,
    manual_run_id,
    settings_for,
)
from flows.errors import EXIT_BAD_INPUT
from flows.settings import Settings


@app.command()
def train(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the training result as JSON.")
    ] = False,
) -> None:
    """Train a challenger on the current marts; promote it only if it beats the champion."""
    from flows.modelling.train import TrainResult, train_model
    from flows.run.lock import pipeline_lock

    settings = settings_for()

    def call() -> TrainResult:
        with pipeline_lock(settings), console.status("training (backtest + final models)"):
            return train_model(settings, latest_snapshot(settings), force=True)

    out = guarded(call)
    if json_out:
        print(json.dumps(asdict(out), default=str, indent=2))
        return
    console.print(
        f"trained {out.trained_version}; champion now {out.champion_version} ({out.decision})"
    )


@app.command()
def score(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the scoring result as JSON.")
    ] = False,
) -> None:
    """Score the current marts with the champion into the warehouse (publish separately)."""
    from flows.modelling.score import ScoreResult, score_accounts
    from flows.run.lock import pipeline_lock

    settings = settings_for()
    run_id = manual_run_id()

    def call() -> ScoreResult:
        with pipeline_lock(settings), console.status("scoring"):
            return score_accounts(settings, latest_snapshot(settings), run_id)

    out = guarded(call, run_id)
    if json_out:
        print(json.dumps(asdict(out), default=str, indent=2))
        return
    console.print(f"{out.accounts_scored} accounts scored with {out.model_version}")


@app.command()
def report(
    oracle: Annotated[
        Path | None,
        typer.Option(
            envvar="EXPANSION_ORACLE_FILE",
            help="Parquet of true probabilities (account_id, snapshot_date, p_expansion) to "
            "compare with, such as the demo generator's data/oracle/expansion_oracle.parquet.",
        ),
    ] = None,
) -> None:
    """Write the champion's model report (one offline HTML page) and print its path."""
    import pandas as pd

    from flows.modelling.score import write_model_report
    from flows.registry import champion_version, load_model
    from flows.transform.manifest import FEATURES_TABLE
    from flows.warehouse import Warehouse

    settings = settings_for()

    def call() -> Any:
        version = champion_version(settings.registry)
        if version is None:
            raise ValueError(f"no champion model in {settings.registry}: run or train first")
        model = load_model(settings.registry, version)
        scores = Warehouse.from_settings(settings).read_frame("select * from scores.account_scores")
        as_of = scores["as_of"].iloc[0] if not scores.empty else latest_snapshot(settings)
        snapshots = Warehouse.from_settings(settings).read_frame(
            f"select * from {FEATURES_TABLE} where snapshot_date <= ?",
            [as_of],
        )
        truth = pd.read_parquet(oracle) if oracle is not None else None
        return write_model_report(settings, model, snapshots, scores, truth)

    console.print(f"model report: {guarded(call)}")


@app.command()
def explain(
    account_id: Annotated[str, typer.Argument(help="The account, as in marts.accounts.")],
    as_of: AsOf = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the explanation as JSON.")
    ] = False,
) -> None:
    """Why an account scores as it does: probability, offer and top reasons (any account)."""

    from flows.modelling.explain import CannotExplain, Explanation
    from flows.modelling.explain import explain as explain_account

    settings = settings_for()
    day = as_of.date() if as_of else None

    def call() -> Explanation | CannotExplain:
        try:
            return explain_account(settings, account_id, day)
        except CannotExplain as exc:  # a message, not a failure
            return exc

    out = guarded(call)
    if isinstance(out, CannotExplain):
        err.print(f"[red]cannot explain[/]: {escape(str(out))}")
        raise typer.Exit(EXIT_BAD_INPUT)
    if json_out:
        print(json.dumps(asdict(out), default=str, indent=2))
        return
    _print_explanation(settings, out)


def _print_explanation(settings: Settings, out: Any) -> None:
    from models.money import format_money

    def money(value: Any) -> str:
        if value is None:
            return "-"
        return format_money(float(value), settings.reporting_currency, settings.locale, 0)

    s = out.score
    console.print(
        f"account [bold]{out.account_id}[/] as of {out.as_of}, model {out.model_version}: "
        f"p(expansion) [bold]{s['p_expansion']:.2f}[/] (upsell {s['p_upsell']:.2f}, "
        f"cross-sell {s['p_cross_sell']:.2f})"
    )
    scored = out.scored
    if scored is None:
        console.print(f"not in the scores of {out.as_of}")
    else:
        rank = scored["action_rank"]
        console.print(
            f"in the scores of {out.as_of} ({scored['model_version']}): decile "
            f"{scored['decile']} of {scored['accounts']:,} accounts, "
            + (f"action rank {int(rank):,}" if rank is not None else "not in the action list")
            + f", touch tier {scored['touch_tier']}"
        )
    if s.get("suppression_reason"):
        console.print(f"[yellow]suppressed[/]: {s['suppression_reason']}")
    offer = s.get("next_best_offer") or "none"
    console.print(
        f"offer: {offer} (offer MRR {money(s.get('offer_mrr'))}, expected "
        f"{money(s.get('expected_expansion_mrr'))})"
    )
    if not out.reasons:
        console.print("no reason: nothing pushes this account's score up")
    for i, reason in enumerate(out.reasons, start=1):
        console.print(f"  {i}. {reason}")


@app.command()
def rollback(
    version: Annotated[
        str | None,
        typer.Argument(help="Version to make champion (default: the one the current replaced)."),
    ] = None,
) -> None:
    """Make an earlier model the champion again; the next scoring run uses it."""
    from flows.registry import rollback as roll_back
    from flows.run.lock import pipeline_lock

    settings = settings_for()

    def call() -> str:
        with pipeline_lock(settings):
            return roll_back(settings.registry, version)

    console.print(f"champion is now {guarded(call)}")


models_app = typer.Typer(help="The model registry: saved versions and the champion.")
app.add_typer(models_app, name="models")

MODEL_COLUMNS = ("version", "trained_at", "training_window_end", "n_rows", "roc_auc", "brier")


@models_app.command("list")
def models_list(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the versions as a JSON list.")
    ] = False,
) -> None:
    """Every saved model: when it was trained, on what window and rows, its latest backtest
    ROC AUC and Brier score (primary target, last cut-off), which one is champion, and with
    MLFLOW_TRACKING_URI set, its MLflow run."""
    from flows import tracking
    from flows.registry import list_models, model_dir

    settings = settings_for()
    listing = (
        guarded(lambda: list_models(settings.registry)) if settings.registry.exists() else None
    )
    rows = [] if listing is None else json.loads(listing.to_json(orient="records"))  # NaN: null
    columns: tuple[str, ...] = MODEL_COLUMNS
    if tracking.tracking_uri():
        columns = (*MODEL_COLUMNS, "mlflow_run_id")
        for row in rows:
            row["mlflow_run_id"] = tracking.recorded_run(
                model_dir(settings.registry, row["version"])
            )
    if json_out:
        print(json.dumps(rows, default=str, indent=2))
        return
    if not rows:
        console.print(f"no model in {settings.registry}: run or train first")
        return
    table = Table(title=f"models in {settings.registry}")
    for col in ("", *columns):
        table.add_column(col, justify="right" if col in ("n_rows", "roc_auc", "brier") else "left")
    for row in rows:
        figures = {
            "roc_auc": "-" if row["roc_auc"] is None else f"{row['roc_auc']:.3f}",
            "brier": "-" if row["brier"] is None else f"{row['brier']:.4f}",
            "n_rows": f"{row['n_rows']:,}",
            "mlflow_run_id": row.get("mlflow_run_id") or "-",
        }
        table.add_row(
            "champion" if row["is_champion"] else "",
            *(figures.get(c, str(row[c])) for c in columns),
        )
    console.print(table)
