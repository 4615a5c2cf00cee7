"""The drift gate names example accounts of a drifted feature from the training snapshot the
feature is judged against (flows/quality/drift.py `judge_drift`): the same names
`stability_against` gives for that snapshot alone, computed once per judged snapshot rather
than for every snapshot the feature was compared with (at 1M accounts that cost over a minute).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from flows.quality.drift import judge_drift
from models.psi import reference, stability_against


def _dated(train: pd.DataFrame, when: str) -> dict:
    return {**reference(train, ["x", "y"], ["c"]), "snapshot_date": when}


def test_examples_come_from_the_snapshot_each_feature_is_judged_against() -> None:
    rng = np.random.default_rng(3)
    n = 2_000

    def rows(x_mean: float, colour: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "x": rng.normal(x_mean, 1, n),
                "y": rng.normal(0, 1, n),
                "c": rng.choice(["red", colour], n),
            }
        )

    ref = {"dates": [_dated(rows(0, "blue"), "2026-01-31"), _dated(rows(3, "green"), "2026-02-28")]}
    score = rows(0, "blue").assign(account_id=[f"a{i:04d}" for i in range(n)])
    half = np.arange(n) % 2 == 0
    score.loc[half, "y"] += 4  # drifted against both dates
    score.loc[half, "c"] = "violet"  # a category neither date saw

    judged = judge_drift(ref, score, ["x", "y"], ["c"], date(2026, 3, 31)).set_index("feature")

    # x is like the first date (no drift, nothing named); y and c drifted
    assert judged.loc["x", "reference_date"] == "2026-01-31"
    assert judged.loc["x", "psi_beyond_chance"] == 0 and judged.loc["x", "example_accounts"] == ""
    for feature in ("y", "c"):
        row = judged.loc[feature]
        assert row["psi_beyond_chance"] > 0
        (snapshot,) = [d for d in ref["dates"] if d["snapshot_date"] == row["reference_date"]]
        numeric = ["y"] if feature == "y" else []
        categorical = ["c"] if feature == "c" else []
        alone = stability_against(
            snapshot, score, numeric, categorical, ids=score["account_id"]
        ).iloc[0]
        assert row["example_accounts"] == alone["example_accounts"] != ""
        named = row["example_accounts"].split(", ")
        assert sum(int(a[1:]) % 2 == 0 for a in named) >= 3  # mostly the moved accounts
