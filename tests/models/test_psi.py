from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.psi import (
    MISSING,
    UNSEEN,
    categorical_bins,
    numeric_bins,
    population_stability,
    psi_from_bins,
)


def test_psi_of_a_known_shift() -> None:
    counts = pd.DataFrame({"bin": ["a", "b"], "train": [50, 50], "score": [25, 75]})
    psi, top = psi_from_bins(counts, epsilon=1e-12)
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi == pytest.approx(expected) and top == "a"


def test_identical_populations_are_stable() -> None:
    values = pd.Series(np.arange(1000, dtype=float))
    frame = population_stability(
        pd.DataFrame({"x": values}), pd.DataFrame({"x": values.sample(frac=1, random_state=1)}),
        ["x"], [],
    )  # fmt: skip
    assert frame.loc[0, "psi"] == pytest.approx(0.0, abs=1e-9)
    assert frame.loc[0, "bins"] == 11  # 10 quantile bins + missing


def test_quantile_bins_come_from_the_training_distribution() -> None:
    train = pd.Series(np.arange(100, dtype=float))
    table = numeric_bins(train, pd.Series([0.0, 40.0, 1000.0, np.nan]), bins=4)
    assert list(table["train"]) == [25, 25, 25, 25, 0]
    assert list(table["score"]) == [1, 1, 0, 1, 1]  # 1000 lands in the top bin, NaN its own
    assert table["bin"].iloc[-1] == MISSING


def test_discrete_features_get_fewer_bins_and_a_shift_shows() -> None:
    train = pd.DataFrame({"n": [0] * 50 + [1] * 30 + [2] * 20})
    score = pd.DataFrame({"n": [0] * 20 + [1] * 30 + [2] * 50})
    frame = population_stability(train, score, ["n"], [])
    assert frame.loc[0, "bins"] == 5  # <= 0, (0, 1], (1, 2], > 2, missing
    assert frame.loc[0, "psi"] > 0.25


def test_missing_values_and_empty_bins_are_bounded() -> None:
    train = pd.DataFrame({"x": np.linspace(0, 1, 200)})
    score = pd.DataFrame({"x": [np.nan] * 100})
    row = population_stability(train, score, ["x"], [], epsilon=1e-4).iloc[0]
    assert math.isfinite(row["psi"]) and row["psi"] > 5
    assert row["top_shift_bin"] == MISSING and row["score_missing_share"] == 1.0


def test_categories_unseen_in_training_get_their_own_bin() -> None:
    table = categorical_bins(
        pd.Series(["smb", "smb", "enterprise", None]), pd.Series(["smb", "whale", None, None])
    )
    counts = dict(zip(table["bin"], zip(table["train"], table["score"], strict=True), strict=True))
    assert counts == {"enterprise": (1, 0), "smb": (2, 1), MISSING: (1, 2), UNSEEN: (0, 1)}


def test_booleans_nullable_ints_and_missing_features() -> None:
    train = pd.DataFrame(
        {
            "flag": pd.array([True, False] * 50, dtype="boolean"),
            "n": pd.array([1, 2, None, 4] * 25, dtype="Int32"),
            "segment": pd.Categorical(["smb", "enterprise"] * 50),
        }
    )
    frame = population_stability(train, train, ["flag", "n", "gone"], ["segment"])
    assert list(frame["feature"]) == ["flag", "n", "gone", "segment"]
    assert list(frame["kind"]) == ["numeric", "numeric", "numeric", "categorical"]
    assert frame.loc[[0, 1, 3], "psi"].abs().max() < 1e-9
    assert math.isnan(frame.loc[2, "psi"]) and frame.loc[2, "top_shift_bin"] == "feature missing"


def test_a_reference_kept_as_json_gives_the_same_psi_as_the_training_rows() -> None:
    """check_drift keeps the training side per champion as JSON and reuses it."""
    import json

    from models.psi import reference, stability_against

    rng = np.random.default_rng(3)
    train = pd.DataFrame(
        {
            "x": rng.normal(size=2000),
            "n": rng.integers(0, 4, 2000),
            "seg": rng.choice(["smb", "ent", None], 2000),
        }
    )
    score = pd.DataFrame(
        {
            "x": rng.normal(0.3, size=500),
            "n": rng.integers(0, 6, 500),
            "seg": rng.choice(["smb", "new"], 500),
        }
    )
    direct = population_stability(train, score, ["x", "n", "gone"], ["seg"])
    kept = json.loads(json.dumps(reference(train, ["x", "n", "gone"], ["seg"])))
    again = stability_against(kept, score, ["x", "n", "gone"], ["seg"])
    pd.testing.assert_frame_equal(direct, again)
    assert again.loc[again["feature"] == "seg", "top_shift_bin"].item() == UNSEEN
    assert math.isnan(again.loc[again["feature"] == "gone", "psi"].item())
