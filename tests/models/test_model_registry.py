"""File registry: save / load / promote / rollback round trip, and a promotion decision on saved models."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.registry import (
    champion_version,
    list_models,
    load_model,
    promote,
    read_metadata,
    rollback,
    save_model,
)
from models.features import prepare_features, scoring_frame
from models.params import Params
from models.promotion import decide_promotion
from models.score import score_accounts
from models.train import TrainedModel, train_model

AT = datetime(2026, 11, 23, 4, 15, tzinfo=UTC)


def _save(model: TrainedModel, registry: Path, minute: int = 15) -> str:
    return save_model(model, registry, "abc123", "f" * 64, AT.replace(minute=minute))


def test_save_load_round_trip(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params, as_of: date, tmp_path: Path
) -> None:
    model = TrainedModel(**{**trained.__dict__, "version": None})  # do not touch the fixture
    version = _save(model, tmp_path)
    assert version == "v0001-20261123T041500Z" and model.version == version
    files = sorted(p.name for p in (tmp_path / "models" / version).iterdir())
    assert files == [
        "backtest_predictions.parquet",
        "booster_cross_sell.txt",
        "booster_expansion.txt",
        "booster_upsell.txt",
        "calibrators.json",
        "metadata.json",
    ]
    meta = read_metadata(tmp_path, version)
    assert meta["trained_at"] == "2026-11-23T04:15:00Z"
    assert meta["code_version"] == "abc123" and meta["data_fingerprint"] == "f" * 64
    assert meta["features"] == params.features.all
    assert meta["training_window"]["end"] == trained.training_window_end.isoformat()
    assert len(meta["metrics"]) == len(trained.metrics)

    loaded = load_model(tmp_path, version)
    frame = scoring_frame(snapshots, as_of)
    X, _ = prepare_features(frame, loaded.params, loaded.categories)
    assert np.array_equal(loaded.predict_proba(X).to_numpy(), trained.predict_proba(X).to_numpy())
    assert loaded.params == trained.params
    assert loaded.categories == trained.categories
    assert loaded.latest_cutoff() == trained.latest_cutoff()
    assert loaded.offer_values == trained.offer_values
    assert loaded.code_version == "abc123" and loaded.data_fingerprint == "f" * 64
    assert loaded.trained_at == "2026-11-23T04:15:00Z"
    assert trained.backtest_predictions is not None and loaded.backtest_predictions is not None
    pd.testing.assert_frame_equal(loaded.backtest_predictions, trained.backtest_predictions)
    scored = score_accounts(loaded, snapshots, as_of, params)
    assert (scored["model_version"] == version).all()
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary files left behind


def test_promote_and_rollback(trained: TrainedModel, tmp_path: Path) -> None:
    model = TrainedModel(**{**trained.__dict__, "version": None})
    v1, v2, v3 = (_save(model, tmp_path, m) for m in (1, 2, 3))
    assert [v1, v2, v3] == [
        "v0001-20261123T040100Z",
        "v0002-20261123T040200Z",
        "v0003-20261123T040300Z",
    ]
    assert champion_version(tmp_path) is None
    promote(tmp_path, v1, at=AT)
    promote(tmp_path, v2, at=AT)
    promote(tmp_path, v3, at=AT)
    assert champion_version(tmp_path) == v3
    assert rollback(tmp_path, at=AT) == v2
    assert rollback(tmp_path, at=AT) == v1
    with pytest.raises(ValueError, match="no champion before"):
        rollback(tmp_path, at=AT)
    assert rollback(tmp_path, v3, at=AT) == v3
    listing = list_models(tmp_path)
    assert listing["version"].tolist() == [v1, v2, v3]
    assert listing["is_champion"].tolist() == [False, False, True]
    with pytest.raises(FileNotFoundError, match="v0009"):
        promote(tmp_path, "v0009-20261123T041500Z")
    with pytest.raises(ValueError, match="timezone-aware"):
        save_model(model, tmp_path, "abc", "x", datetime(2026, 1, 1))


def test_model_saved_under_an_older_params_schema_still_loads(
    trained: TrainedModel, snapshots: pd.DataFrame, as_of: date, tmp_path: Path
) -> None:
    import json

    model = TrainedModel(**{**trained.__dict__, "version": None})
    version = _save(model, tmp_path)
    meta_path = tmp_path / "models" / version / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["params"]["retired_setting"] = 1  # a key today's schema no longer knows
    meta_path.write_text(json.dumps(meta))

    loaded = load_model(tmp_path, version)
    frame = scoring_frame(snapshots, as_of)
    X, _ = prepare_features(frame, loaded.params, loaded.categories)
    assert np.array_equal(loaded.predict_proba(X).to_numpy(), trained.predict_proba(X).to_numpy())
    assert loaded.params.features == trained.params.features


def test_model_without_backtest_predictions_or_offer_values_still_loads(
    trained: TrainedModel, snapshots: pd.DataFrame, params: Params, as_of: date, tmp_path: Path
) -> None:
    """Models saved before predictions were kept, or with the offer values learned before
    offers came from the catalogue: they load, and their offers are the catalogue's."""
    import json

    model = TrainedModel(**{**trained.__dict__, "version": None})
    version = _save(model, tmp_path)
    folder = tmp_path / "models" / version
    (folder / "backtest_predictions.parquet").unlink()
    meta = json.loads((folder / "metadata.json").read_text())
    legacy = {"seat_price_by_tier": {"1": 25.0}, "extra_seat_fraction": 0.25}
    meta.update(offer_values={**legacy, "cross_sell_mrr_per_seat": {}}, expansion_mrr_ratio=0.3)
    (folder / "metadata.json").write_text(json.dumps(meta))
    loaded = load_model(tmp_path, version)
    assert loaded.backtest_predictions is None
    assert loaded.offer_values is not None and loaded.offer_values.seat_price_by_tier == {1: 25.0}
    assert loaded.expansion_mrr_ratio == 0.3
    del meta["offer_values"]
    (folder / "metadata.json").write_text(json.dumps(meta))
    loaded = load_model(tmp_path, version)
    assert loaded.offer_values is None
    scored = score_accounts(loaded, snapshots, as_of, params)
    frame = scoring_frame(snapshots, as_of).set_index("account_id").loc[scored["account_id"]]
    upsell = scored["offer_type"].str.startswith("upsell").fillna(False).to_numpy()
    expected = np.where(
        upsell,
        scored["p_upsell"] * frame["upsell_offer_mrr"].to_numpy(),
        scored["p_cross_sell"] * frame["cross_sell_offer_mrr"].to_numpy(),
    )
    assert np.allclose(scored["expected_expansion_mrr"], np.nan_to_num(expected))


def test_promotion_keeps_the_champion_when_the_challenger_is_worse(
    make_snapshots: Callable[..., pd.DataFrame], params: Params, tmp_path: Path
) -> None:
    """The decision flows/modelling/train.py (train_model) takes on saved models: the
    challenger's bars, then the paired comparison with the champion on the rows both
    predicted; a challenger shown short of the champion + margin is not promoted. (150
    accounts: on the 30 of the shared fixture no comparison shows anything.)"""
    snapshots = make_snapshots(n_accounts=150, seed=3)
    champion = train_model(snapshots, params)
    promote(tmp_path, _save(champion, tmp_path, 1), at=AT)
    # A worse challenger on the same data: labels shuffled across rows (no signal left).
    rng = np.random.default_rng(5)
    noisy = snapshots.copy()
    complete = noisy["is_label_complete"].to_numpy(dtype=bool)
    for label in params.label_columns:
        noisy.loc[complete, label] = rng.permutation(noisy.loc[complete, label].to_numpy())
    challenger = train_model(noisy, params)
    _save(challenger, tmp_path, 2)
    # No absolute bars (synthetic rows are no real model): the champion decides.
    lenient = params.model_copy(
        update={
            "quality": params.quality.model_copy(update={"min_roc_auc": 0.0, "max_brier": 1.0}),
            "acceptance": params.acceptance.model_copy(
                update={"max_ece": 1.0, "must_beat_baseline": None, "resamples": 200}
            ),
        }
    )
    saved = load_model(tmp_path, champion_version(tmp_path) or "")
    decision = decide_promotion(challenger, saved, snapshots, lenient)
    assert not decision.promote and "does not beat champion" in decision.reason, decision.reason
    assert decision.assessment.verdicts()["champion"] == "failed"
    assert champion_version(tmp_path) == champion.version


def test_expansion_models_list_shows_versions_figures_and_the_champion(
    trained: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from flows.cli import app

    registry = tmp_path / "registry"
    first = _save(TrainedModel(**{**trained.__dict__, "version": None}), registry, minute=15)
    second = _save(TrainedModel(**{**trained.__dict__, "version": None}), registry, minute=16)
    promote(registry, first, at=AT)
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("EXPANSION_REGISTRY_DIR", str(registry))

    out = CliRunner().invoke(app, ["models", "list", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [r["version"] for r in rows] == [first, second]
    assert [r["is_champion"] for r in rows] == [True, False]
    expected = list_models(registry)
    assert [r["roc_auc"] for r in rows] == pytest.approx(expected["roc_auc"].tolist())
    assert [r["n_rows"] for r in rows] == expected["n_rows"].tolist()

    table = CliRunner().invoke(app, ["models", "list"])
    assert table.exit_code == 0, table.output
    champion_line = next(line for line in table.output.splitlines() if first in line)
    assert "champion" in champion_line and f"{expected['roc_auc'].iloc[0]:.3f}" in champion_line

    empty = tmp_path / "empty"
    monkeypatch.setenv("EXPANSION_REGISTRY_DIR", str(empty))
    none = CliRunner().invoke(app, ["models", "list", "--json"])
    assert none.exit_code == 0 and json.loads(none.output) == []
