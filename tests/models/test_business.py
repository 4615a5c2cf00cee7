"""The business declaration: metric names that feature columns can be told apart by."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.business import Business, UsageMetric, load_business

PROJECT = Path(__file__).resolve().parents[2]


def test_shipped_declaration_loads() -> None:
    business = load_business(PROJECT / "config" / "business.yml")
    assert business.metric_names and set(business.limited_metric_names) <= set(
        business.metric_names
    )


@pytest.mark.parametrize("name", ["api__calls", "api_", "api_calls_", "_api", "Api", "api-calls"])
def test_metric_names_are_words_joined_by_single_underscores(name: str) -> None:
    with pytest.raises(ValueError, match="single underscores"):
        UsageMetric(name=name, label="x", aggregation="sum")


def test_metric_names_with_digits_and_single_underscores_pass() -> None:
    business = Business(
        usage_metrics=[
            UsageMetric(name="api", label="API", aggregation="sum"),
            UsageMetric(name="api_calls_v2", label="API calls", aggregation="sum"),
        ]
    )
    assert business.metric_names == ["api", "api_calls_v2"]
