"""Binary metrics and calibration tables on known inputs."""

from __future__ import annotations

import math
import warnings

import pytest

from models.evaluate import (
    binary_metrics,
    calibration_table,
    expected_calibration_error,
    gain_table,
    roc_points,
)


def test_metrics_on_known_input() -> None:
    m = binary_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["pr_auc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert m["base_rate"] == 0.5
    # top decile = ceil(10% of 4) = 1 row: the 0.8, a positive
    assert m["lift_top_decile"] == pytest.approx(2.0)
    assert m["capture_top_decile"] == pytest.approx(0.5)
    assert (m["n"], m["n_pos"]) == (4, 2)


def test_lift_over_twenty_rows() -> None:
    y = [1, 1, 0, 0] + [0] * 14 + [1, 1]
    p = [0.9, 0.8] + [0.5] * 16 + [0.1, 0.1]
    m = binary_metrics(y, p)
    assert m["lift_top_decile"] == pytest.approx(1.0 / 0.2)
    assert m["capture_top_decile"] == pytest.approx(0.5)


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_gives_nan_without_crash(label: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = binary_metrics([label] * 5, [0.1, 0.2, 0.3, 0.4, 0.5])
    assert math.isnan(m["roc_auc"]) and math.isnan(m["pr_auc"])
    assert m["base_rate"] == label
    assert not math.isnan(m["brier"])
    assert math.isnan(m["lift_top_decile"]) == (label == 0)


def test_empty_input_is_all_nan() -> None:
    m = binary_metrics([], [])
    assert m["n"] == 0
    assert all(math.isnan(m[k]) for k in ("roc_auc", "pr_auc", "brier", "base_rate"))


def test_scores_that_are_not_probabilities() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binary_metrics([0, 1], [-3.0, 12.0])
    m = binary_metrics([0, 1], [-3.0, 12.0], is_probability=False)
    assert m["roc_auc"] == 1.0 and math.isnan(m["brier"])


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="length"):
        binary_metrics([0, 1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="0/1"):
        binary_metrics([0, 2], [0.2, 0.3])


def test_calibration_table() -> None:
    y = [0, 0, 1, 1, 1, 0]
    p = [0.05, 0.15, 0.95, 0.91, 0.12, 1.0]
    table = calibration_table(y, p, bins=10)
    assert table["bin"].tolist() == [1, 2, 10]
    assert table["n"].tolist() == [1, 2, 3]
    assert table["n_pos"].tolist() == [0, 1, 2]
    assert table["observed_rate"].iloc[2] == pytest.approx(2 / 3)
    assert table["mean_predicted"].iloc[1] == pytest.approx(0.135)
    assert table["n"].sum() == len(y)
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0
    assert calibration_table([], []).empty


def test_binary_metrics_include_ece() -> None:
    y = [0] * 8 + [1] * 2
    p = [0.2] * 10  # predicted 20%, observed 20%: perfectly calibrated
    assert binary_metrics(y, p)["ece"] == pytest.approx(0.0)
    assert binary_metrics(y, [0.6] * 10)["ece"] == pytest.approx(0.4)
    assert math.isnan(binary_metrics(y, [5.0] * 10, is_probability=False)["ece"])


def test_gain_table_and_roc_points() -> None:
    y = [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    p = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
    table = gain_table(y, p, bins=5)
    assert table["n"].tolist() == [2] * 5
    assert table["n_pos"].tolist() == [2, 0, 1, 0, 0]
    assert table["lift"].iloc[0] == pytest.approx(1.0 / 0.3)
    assert table["cum_capture"].tolist() == pytest.approx([2 / 3, 2 / 3, 1.0, 1.0, 1.0])
    assert table["cum_share"].iloc[-1] == pytest.approx(1.0)
    roc = roc_points(y, p)
    assert (roc["fpr"].iloc[0], roc["tpr"].iloc[0]) == (0.0, 0.0)
    assert (roc["fpr"].iloc[-1], roc["tpr"].iloc[-1]) == (1.0, 1.0)
    assert roc_points([0, 0], [0.1, 0.2]).empty
