"""Calibration: a booster's raw score (log-odds) to a probability, fitted on held-out rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from models.arrays import FloatArray


@dataclass(frozen=True)
class Calibrator:
    """Maps a booster's raw score (log-odds) to a calibrated probability.

    `sigmoid`: 1 / (1 + exp(-(a * raw + b))) (Platt); `isotonic`: piecewise-linear through
    (x, y) with clipping at the ends; `identity`: the booster's own sigmoid (fallback when the
    held-out rows have a single class, or when their scores do not rank them: a Platt slope
    <= 0 would reverse the booster's ranking).
    """

    method: str
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def predict(self, raw_score: Any) -> FloatArray:
        """Calibrated probabilities for raw scores."""
        raw = np.asarray(raw_score, dtype=np.float64)
        if self.method == "isotonic":
            return np.clip(np.interp(raw, self.x, self.y), 0.0, 1.0)
        z = np.clip(self.a * raw + self.b, -500.0, 500.0)
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "a": self.a,
            "b": self.b,
            "x": list(self.x),
            "y": list(self.y),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Calibrator:
        return cls(
            method=str(raw["method"]),
            a=float(raw["a"]),
            b=float(raw["b"]),
            x=tuple(float(v) for v in raw["x"]),
            y=tuple(float(v) for v in raw["y"]),
        )


def fit_calibrator(raw_score: Any, y: Any, method: str) -> Calibrator:
    """Fit a Platt (`sigmoid`) or `isotonic` calibrator on held-out raw scores (identity when
    they have a single class or, for Platt, do not rank the rows: the booster's ranking is never
    reversed)."""
    raw = np.asarray(raw_score, dtype=np.float64)
    y_arr = np.asarray(y, dtype=np.int64)
    if y_arr.size == 0 or y_arr.min() == y_arr.max():
        return Calibrator(method="identity")
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y_arr)
        return Calibrator(
            method="isotonic",
            x=tuple(float(v) for v in iso.X_thresholds_),
            y=tuple(float(v) for v in iso.y_thresholds_),
        )
    if method == "sigmoid":
        lr = LogisticRegression(C=np.inf).fit(raw.reshape(-1, 1), y_arr)
        a = float(lr.coef_[0, 0])
        if not a > 0:  # higher scores are not more often positive here: keep the ranking
            return Calibrator(method="identity")
        return Calibrator(method="sigmoid", a=a, b=float(lr.intercept_[0]))
    raise ValueError(f"calibration.method must be sigmoid or isotonic, got {method!r}")
