"""Past one machine: scoring partitions and the final LightGBM fit on a Dask cluster.

With `settings.dask_address` unset (EXPANSION_DASK_ADDRESS, the default) everything runs in
this process, exactly as before. With a scheduler address:

* **Scoring** (`score_frame`): ranks, deciles, offers, tiers and suppression stay here
  (`models.score.score_accounts`); the per-row work goes to the cluster. The active accounts
  are split into `dask_partitions` partitions by a hash of account_id; each partition's
  snapshot rows are written as Parquet to a run folder under `dask_shared_dir`, and a Prefect
  subflow with `DaskTaskRunner(address=...)` maps one task over the partitions: it reads its
  rows, scores them and writes its result as Parquet, returning only the file name. The same
  happens a second time for LightGBM's contributions of the accounts that get reasons (the
  phrasing stays here). The model reaches the workers as one file in that folder: the model
  without its backtest (metrics and test-row predictions), pickled, which pickles each
  booster as LightGBM's text model (the registry's format), so the workers predict with
  exactly the booster the registry holds, whether or not the model has been saved, and
  without the registry having to be on shared storage.
* **Training** (`fit_model`): the backtest, early stopping and calibration run here; the refit
  of each final booster on every complete row (`lightgbm.refit`) runs with
  `lightgbm.dask.DaskLGBMClassifier` (same parameters, the early-stopped number of rounds)
  on a Dask DataFrame dealt across the workers. Distributed LightGBM finds its histogram bins
  and bagging samples per worker, so its boosters are close to, not equal to, the local ones.

The workers need this project installed (same lightgbm and pandas versions) and must be
able to reach the Prefect API the run reports to, the shared folder, and each other on
LightGBM's ports (chosen at random per fit).
"""

from __future__ import annotations

import logging
import pickle
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlparse

import fsspec
import lightgbm as lgb
import numpy as np
import pandas as pd
from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE

from flows.progress import reporter
from flows.settings import Settings
from models.arrays import IntArray
from models.booster import RefitBooster
from models.distributed import (
    classifier_params,
    contribution_rows,
    partition_of,
    predict_rows,
    scoring_copy,
    training_partitions,
)
from models.params import Params
from models.score import Contribute, Predict, score_accounts
from models.train import TrainedModel, train_model

log = logging.getLogger(__name__)

Kind = Literal["probabilities", "contributions"]
MODEL_FILE = "model.pkl"
LABEL = "__label__"


def shared_dir(settings: Settings) -> str:
    """Where partition files go: `dask_shared_dir`, default <home>/dask."""
    return (settings.dask_shared_dir or str(settings.home / "dask")).rstrip("/")


# --- scoring ----------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _read_model(path: str) -> TrainedModel:
    """The model file of a run (read once per worker process and run folder)."""
    with fsspec.open(path, "rb") as fh:
        model: TrainedModel = pickle.load(fh)
    return model


def _part_path(run_dir: str, kind: Kind, side: str, part: int) -> str:
    return f"{run_dir}/{kind}/{side}/part-{part:05d}.parquet"


@task(name="score_partition", cache_policy=NO_CACHE)
def score_partition(run_dir: str, part: int, kind: Kind) -> str:
    """On a Dask worker: score one partition's rows, write the result, return its path."""
    model = _read_model(f"{run_dir}/{MODEL_FILE}")
    rows = pd.read_parquet(_part_path(run_dir, kind, "in", part))
    out = predict_rows(model, rows) if kind == "probabilities" else contribution_rows(model, rows)
    path = _part_path(run_dir, kind, "out", part)
    fs, local = fsspec.core.url_to_fs(path)
    fs.makedirs(local.rsplit("/", 1)[0], exist_ok=True)
    out.to_parquet(path, index=True)
    return path


@flow(name="score-partitions", log_prints=False, validate_parameters=False)
def score_partitions(run_dir: str, parts: list[int], kind: Kind) -> list[str]:
    """One `score_partition` task per partition, on the flow's task runner."""
    futures = score_partition.map(unmapped(run_dir), parts, unmapped(kind))
    return [f.result() for f in futures]


@contextmanager
def _api_for_workers(address: str) -> Iterator[None]:
    """Let the Dask workers report their task runs to this process's Prefect API.

    They receive this process's Prefect settings with each task. With PREFECT_API_URL set
    that is enough; a temporary local server (no PREFECT_API_URL) is not in the settings, and
    each worker would start a temporary server of its own, so its URL is added for the
    duration of the subflow. That server listens on 127.0.0.1 only: workers on other machines
    need PREFECT_API_URL pointing at a Prefect server they can reach.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    host = urlparse(address if "://" in address else f"tcp://{address}").hostname
    if host not in {"127.0.0.1", "localhost", "::1"}:
        log.warning(
            "the Prefect API is a temporary server on 127.0.0.1, which Dask workers on other "
            "machines cannot reach: set PREFECT_API_URL to a Prefect server they can reach"
        )
    server = SubprocessASGIServer()
    server.start()  # the one this process uses (started already inside a pipeline run)
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield


def _on_dask(address: str, run_dir: str, kind: Kind, rows: pd.DataFrame, n: int) -> pd.DataFrame:
    """Write `rows` as partitions, score them on the cluster, read the results back."""
    from prefect_dask import DaskTaskRunner

    if rows.empty:
        model = _read_model(f"{run_dir}/{MODEL_FILE}")
        empty = predict_rows if kind == "probabilities" else contribution_rows
        return empty(model, rows)
    parts = partition_of(rows["account_id"], n)
    used = sorted(int(p) for p in np.unique(parts))
    fs, local = fsspec.core.url_to_fs(f"{run_dir}/{kind}/in")
    fs.makedirs(local, exist_ok=True)
    for part in used:
        rows.loc[parts == part].to_parquet(_part_path(run_dir, kind, "in", part), index=True)
    runner = DaskTaskRunner(address=address)
    subflow = score_partitions.with_options(task_runner=runner)  # type: ignore[arg-type]
    with _api_for_workers(address):
        paths = subflow(run_dir, used, kind)
    return pd.concat([pd.read_parquet(p) for p in paths])


@contextmanager
def dask_scoring(settings: Settings, model: TrainedModel) -> Iterator[tuple[Predict, Contribute]]:
    """`predict` and `contribute` for `models.score.score_accounts` that run on the cluster at
    `settings.dask_address`; the run folder under the shared dir is removed on exit."""
    address = settings.dask_address
    if not address:
        raise ValueError("dask_scoring needs settings.dask_address (EXPANSION_DASK_ADDRESS)")
    run_dir = f"{shared_dir(settings)}/score-{uuid.uuid4().hex[:12]}"
    fs, local = fsspec.core.url_to_fs(run_dir)
    fs.makedirs(local, exist_ok=True)
    try:
        with fsspec.open(f"{run_dir}/{MODEL_FILE}", "wb") as fh:
            pickle.dump(scoring_copy(model), fh, protocol=pickle.HIGHEST_PROTOCOL)
        n = settings.dask_partitions

        def predict(rows: pd.DataFrame) -> pd.DataFrame:
            return _on_dask(address, run_dir, "probabilities", rows, n)

        def contribute(rows: pd.DataFrame) -> pd.DataFrame:
            return _on_dask(address, run_dir, "contributions", rows, n)

        yield predict, contribute
    finally:
        fs.rm(local, recursive=True)


def score_frame(
    settings: Settings,
    model: TrainedModel,
    snapshots: pd.DataFrame,
    as_of: date,
    params: Params,
    *,
    owners: pd.Series | None = None,
) -> pd.DataFrame:
    """`models.score.score_accounts` (reasons as `action_list` says, or for the first
    `settings.reasons_top_n` of the action list when set): in this process, or with the
    per-row work on the Dask cluster at `settings.dask_address` (same scores)."""
    if not settings.dask_address:
        return score_accounts(
            model,
            snapshots,
            as_of,
            params,
            reasons_for_top_n=settings.reasons_top_n,
            owners=owners,
            locale=settings.locale,
            currency=settings.reporting_currency,
            progress=reporter("scoring"),
        )
    log.info(
        "scoring on Dask at %s in %d partitions (shared folder %s)",
        settings.dask_address,
        settings.dask_partitions,
        shared_dir(settings),
    )
    with dask_scoring(settings, model) as (predict, contribute):
        return score_accounts(
            model,
            snapshots,
            as_of,
            params,
            reasons_for_top_n=settings.reasons_top_n,
            owners=owners,
            predict=predict,
            contribute=contribute,
            locale=settings.locale,
            currency=settings.reporting_currency,
            progress=reporter("scoring"),
        )


# --- training ---------------------------------------------------------------------------------


def dask_refit(client: Any, partitions: int) -> RefitBooster:
    """A `refit_booster` for `models.train.train_model` that fits on the cluster of `client`
    (a distributed.Client) with lightgbm.dask: the rows are dealt into at most `partitions`
    partitions (`training_partitions`), scattered over the workers, and each worker trains on
    the partitions it holds (data-parallel tree learner)."""

    def refit(
        booster_params: dict[str, Any],
        X: pd.DataFrame,
        y: IntArray,
        categorical: list[str],
        rounds: int,
    ) -> lgb.Booster:
        import dask.dataframe as dd
        from distributed import wait
        from lightgbm.dask import DaskLGBMClassifier

        parts = training_partitions(y, partitions)
        frame = X.assign(**{LABEL: np.asarray(y, dtype=np.int64)})
        pieces = [frame.loc[parts == k] for k in range(int(parts.max()) + 1)]
        # lightgbm.dask sets num_threads to each worker's thread count.
        given = {k: v for k, v in booster_params.items() if k != "num_threads"}
        model = DaskLGBMClassifier(client=client, **classifier_params(given, rounds))
        # lightgbm.dask waits through distributed's current client: this one, here only.
        with client.as_current():
            futures = client.scatter(pieces)  # spread over the workers
            wait(futures)
            ddf = dd.from_delayed(futures, meta=frame.iloc[:0], verify_meta=False)
            with warnings.catch_warnings():  # n_jobs is a classifier default; it says so
                warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored")
                model.fit(ddf[list(X.columns)], ddf[LABEL], categorical_feature=categorical)
        # Round-trip through the text format, like every booster the registry will load.
        return lgb.Booster(model_str=model.booster_.model_to_string())

    return refit


def fit_model(
    settings: Settings,
    snapshots: pd.DataFrame,
    params: Params,
    *,
    owners: pd.Series | None = None,
) -> TrainedModel:
    """`models.train.train_model`: in this process, or with the final refit on the Dask
    cluster at `settings.dask_address` (backtest, early stopping, calibration stay here).
    `owners` (account_id -> owner) sizes per-owner tiers in the action list's figures. The
    backtest's cut-offs and the final fits are reported as "training" (flows/progress.py)."""
    progress = reporter("training")
    if not settings.dask_address:
        return train_model(snapshots, params, owners=owners, progress=progress)
    if not params.lightgbm.refit:
        log.warning(
            "EXPANSION_DASK_ADDRESS is set but lightgbm.refit is off: the final boosters are "
            "the early-stopped ones, fitted in this process"
        )
        return train_model(snapshots, params, owners=owners, progress=progress)
    from distributed import Client

    log.info("refitting the final boosters on Dask at %s", settings.dask_address)
    with Client(settings.dask_address, set_as_default=False) as client:
        return train_model(
            snapshots,
            params,
            refit_booster=dask_refit(client, settings.dask_partitions),
            owners=owners,
            progress=progress,
        )
