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
    reference,
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

    from models.psi import stability_against

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


def test_the_chance_level_is_what_chance_gives_between_two_samples_of_one_population() -> None:
    """Under no change PSI ~ (1/n_ref + 1/n_cur) chi-square(bins - 1): simulated, the 99.9%
    level is exceeded about once in a thousand draws, and it shrinks with the row counts."""
    from models.psi import chance_psi, stability_against

    rng = np.random.default_rng(0)
    population = rng.lognormal(3, 1, 100_000)
    ref = reference(pd.DataFrame({"x": rng.choice(population, 300)}), ["x"], [])
    psis = np.array(
        [
            stability_against(ref, pd.DataFrame({"x": rng.choice(population, 300)}), ["x"], [])[
                "psi"
            ][0]
            for _ in range(400)
        ]
    )
    level = chance_psi(300, 300, 10)  # 10 occupied bins: 9 degrees of freedom
    assert level == pytest.approx((2 / 300) * 27.877, rel=1e-3)
    assert (psis > level).mean() < 0.01
    assert np.median(psis) == pytest.approx((2 / 300) * 8.34, rel=0.25)  # chi2(9) median
    assert (psis > 0.1).any()  # the fixed "moderate shift" bar, reached by chance alone
    assert chance_psi(10_000, 10_000, 10) < 0.006 < level
    assert chance_psi(0, 300, 10) == float("inf")


def test_a_feature_is_judged_beyond_its_chance_level_and_names_what_moved() -> None:
    from models.psi import stability_against

    rng = np.random.default_rng(1)
    train = pd.DataFrame({"x": rng.normal(size=400)})
    ref = reference(train, ["x"], [])
    same = pd.DataFrame({"x": rng.normal(size=400), "account_id": [f"a{i}" for i in range(400)]})
    row = stability_against(ref, same, ["x"], [], ids=same["account_id"]).iloc[0]
    assert row["psi"] < row["chance_psi"] and row["psi_beyond_chance"] == 0.0
    assert row["example_accounts"] == ""  # nothing named when nothing drifted
    moved = same.assign(x=np.where(np.arange(400) % 2 == 0, same["x"] + 3, same["x"]))
    row = stability_against(ref, moved, ["x"], [], ids=moved["account_id"]).iloc[0]
    assert row["psi_beyond_chance"] == row["psi"] > max(0.25, row["chance_psi"])
    top, *_ = row["moved_bins"].split("; ")
    assert top.startswith("> ") and " of 400 (10.0%) -> " in top  # the top bin, 10% before
    named = row["example_accounts"].split(", ")
    # accounts in the bins that grew: mostly moved ones (the others were there already)
    assert len(named) == 5 and sum(int(a[1:]) % 2 == 0 for a in named) >= 3


def test_an_age_is_compared_with_the_reference_moved_by_the_days_since() -> None:
    from models.psi import stability_against

    rng = np.random.default_rng(2)
    tenure = pd.Series(rng.integers(0, 400, 500).astype(float))
    ref = reference(pd.DataFrame({"tenure_days": tenure}), ["tenure_days"], [])
    older = pd.DataFrame({"tenure_days": tenure + 92})  # the same accounts 92 days later
    as_is = stability_against(ref, older, ["tenure_days"], []).iloc[0]
    moved = stability_against(ref, older, ["tenure_days"], [], shift_days={"tenure_days": 92})
    assert as_is["psi"] > 0.5
    assert moved.loc[0, "psi"] == pytest.approx(0.0, abs=1e-9) and moved.loc[0, "shift_days"] == 92


def test_features_that_grow_with_the_calendar_are_measured_on_training_snapshots() -> None:
    """An age grows by the days between two snapshots for every account; a days-since that
    restarts often keeps its distribution, and a count does not grow with the days."""
    from models.psi import calendar_features

    rng = np.random.default_rng(3)
    dates = pd.date_range("2026-01-31", periods=8, freq="ME")
    accounts = np.arange(300)
    start = rng.integers(0, 500, 300)
    rows = []
    for day in dates:
        offset = (day - dates[0]).days
        rows.append(
            pd.DataFrame(
                {
                    "account_id": accounts.astype(str),
                    "snapshot_date": day,
                    "tenure_days": start + offset,
                    "days_since_last_login": rng.integers(0, 7, 300),
                    "tickets_90d": rng.poisson(2, 300),
                }
            )
        )
    frame = pd.concat(rows, ignore_index=True)
    found = calendar_features(frame, ["tenure_days", "days_since_last_login", "tickets_90d"])
    assert list(found) == ["tenure_days"]
    assert found["tenure_days"]["share"] == 1.0
    assert found["tenure_days"]["psi_moved"] < found["tenure_days"]["psi_as_is"]
    assert calendar_features(frame.loc[frame["snapshot_date"] == dates[0]], ["tenure_days"]) == {}
