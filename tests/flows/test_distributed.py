"""Past one machine: scoring partitions and the final refit on a local 2-worker Dask cluster.

The Dask path must give the single-process scores (probabilities within 1e-6, the same
accounts, ranks, offers, tiers and reasons); Dask training must give a valid model close to
the local one (distributed LightGBM is not bit-identical).
"""

from __future__ import annotations

import contextlib
import importlib
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before any worker process starts

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from flows.settings import Settings, get_settings
from models.booster import refit_local
from models.distributed import classifier_params, partition_of, training_partitions
from models.evaluate import binary_metrics
from models.features import label_array, prepare_features, training_frame
from models.params import Params, load_params
from models.train import TrainedModel, train_model
from tests.models.conftest import AS_OF, fast_params, synthetic_snapshots

PROBABILITIES = ["p_expansion", "p_upsell", "p_cross_sell"]
AUC_TOLERANCE = 0.05  # Dask-trained vs locally trained, on held-out synthetic rows


def _start_cluster() -> Any:
    """A local 2-worker cluster whose workers have already imported the scoring code."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=40,
    )
    with Client(cluster, set_as_default=False) as client:
        client.run(importlib.import_module, "flows.modelling.distributed")
    return cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """The cluster and, for the Prefect subflows, a temporary Prefect server: started side by
    side (each takes several seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with ThreadPoolExecutor(max_workers=1) as pool:
        starting = pool.submit(_start_cluster)
        try:
            with prefect_test_harness(server_startup_timeout=120):
                yield starting.result(timeout=180)
        finally:
            with contextlib.suppress(Exception):  # closed even when the server failed to start
                starting.result(timeout=180).close()


@pytest.fixture(scope="module")
def params() -> Params:
    return fast_params(load_params())


@pytest.fixture(scope="module")
def snapshots() -> pd.DataFrame:
    return synthetic_snapshots(n_accounts=60, n_months=14, seed=3)


@pytest.fixture(scope="module")
def model(snapshots: pd.DataFrame, params: Params) -> TrainedModel:
    return train_model(snapshots, params, backtest=False)


def _tasks_executed(client: Any) -> int:
    """Tasks the cluster's workers have executed so far (the lambda travels by value)."""
    counts = client.run(lambda dask_worker: int(dask_worker.state.executed_count))
    return int(sum(counts.values()))


def _settings(tmp_path: Path, address: str | None = None, partitions: int = 4) -> Settings:
    return get_settings(home=tmp_path / "state", dask_address=address, dask_partitions=partitions)


def test_partitions_are_stable_and_cover_every_account() -> None:
    ids = pd.Series([f"A{i:04d}" for i in range(200)])
    parts = partition_of(ids, 8)
    assert parts.min() >= 0 and parts.max() <= 7 and len(np.unique(parts)) == 8
    np.testing.assert_array_equal(parts, partition_of(ids.sample(frac=1.0).sort_index(), 8))
    y = np.r_[np.zeros(95, dtype=np.int64), np.ones(5, dtype=np.int64)]
    dealt = training_partitions(y, 8)
    assert len(np.unique(dealt)) == 5  # never more partitions than rows of the rarer class
    for k in np.unique(dealt):
        assert set(y[dealt == k]) == {0, 1}


def test_classifier_params_fit_the_same_booster_as_lightgbm_train(
    snapshots: pd.DataFrame, params: Params, model: TrainedModel
) -> None:
    """What DaskLGBMClassifier is given is what `refit_local` fits (checked in one process)."""
    frame = training_frame(snapshots, params)
    X, _ = prepare_features(frame, params, model.categories)
    y = label_array(frame, params.targets["expansion"])
    booster_params = params.lightgbm.booster_params()
    booster_params["monotone_constraints"] = params.lightgbm.monotone_vector(list(X.columns))
    categorical = list(params.features.categorical)
    local = refit_local(booster_params, X, y, categorical, 25)
    clf = lgb.LGBMClassifier(**classifier_params(booster_params, 25))
    clf.fit(X, y, categorical_feature=categorical)
    assert clf.booster_.model_to_string() == local.model_to_string()


def test_scores_on_dask_equal_single_process(
    tmp_path: Path,
    cluster: Any,
    snapshots: pd.DataFrame,
    params: Params,
    model: TrainedModel,
) -> None:
    from distributed import Client

    from flows.modelling.distributed import score_frame

    address = cluster.scheduler_address
    ids = sorted(snapshots["account_id"].unique())
    owners = pd.Series([["Ana", "Ben", "Cho"][i % 3] for i in range(len(ids))], index=ids)
    local = score_frame(_settings(tmp_path), model, snapshots, AS_OF, params, owners=owners)
    with Client(address, set_as_default=False) as client:
        before = _tasks_executed(client)
        on_dask = score_frame(
            _settings(tmp_path, address), model, snapshots, AS_OF, params, owners=owners
        )
        executed = _tasks_executed(client) - before

    assert list(on_dask["account_id"]) == list(local["account_id"])
    diff = max(
        float(np.abs(on_dask[c].to_numpy() - local[c].to_numpy()).max()) for c in PROBABILITIES
    )
    print(f"max abs probability difference, Dask vs single process: {diff:.3g}")
    assert diff <= 1e-6
    pd.testing.assert_frame_equal(on_dask, local, check_exact=False, rtol=0, atol=1e-6)
    assert local["reason_1"].notna().any()  # the reasons compared above are not all empty
    # The workers scored the partitions (one task per partition, probabilities and
    # contributions), and the run folder is gone.
    assert executed >= len(np.unique(partition_of(pd.Series(ids), 4))), executed
    assert not any((tmp_path / "state" / "dask").iterdir())


def test_training_on_dask_gives_a_valid_model_close_to_the_local_one(
    tmp_path: Path,
    cluster: Any,
    snapshots: pd.DataFrame,
    params: Params,
    model: TrainedModel,
) -> None:
    from flows.modelling.distributed import fit_model
    from flows.registry import load_model, save_model

    address = cluster.scheduler_address
    on_dask = fit_model(_settings(tmp_path, address, partitions=2), snapshots, params)
    assert on_dask.best_iterations == model.best_iterations
    for target, booster in on_dask.boosters.items():
        assert booster.current_iteration() == model.boosters[target].current_iteration()

    # Saved and loaded by the registry like any model, with the same predictions.
    version = save_model(on_dask, tmp_path / "models", "test", "test", datetime.now(UTC))
    loaded = load_model(tmp_path / "models", version)

    held_out = training_frame(synthetic_snapshots(n_accounts=60, n_months=14, seed=4), params)
    X, _ = prepare_features(held_out, params, model.categories)
    p_local, p_dask = model.predict_proba(X), loaded.predict_proba(X)
    pd.testing.assert_frame_equal(p_dask, on_dask.predict_proba(X), check_exact=True)
    assert ((p_dask >= 0) & (p_dask <= 1)).all().all()
    for target, label in params.targets.items():
        y = label_array(held_out, label)
        auc_local = binary_metrics(y, p_local[f"p_{target}"])["roc_auc"]
        auc_dask = binary_metrics(y, p_dask[f"p_{target}"])["roc_auc"]
        gap = float(np.abs(p_local[f"p_{target}"] - p_dask[f"p_{target}"]).max())
        print(f"{target}: AUC local {auc_local:.4f}, Dask {auc_dask:.4f}, max |dp| {gap:.4f}")
        assert abs(auc_dask - auc_local) <= AUC_TOLERANCE
