"""What a business measures: its usage metrics, declared in `config/business.yml`.

A company declares each product-usage metric once (name, label, unit, how a day's values
combine over days, and whether a plan limit caps it). Everything else follows from the
declaration: the loader accepts exactly these names in `usage.usage_daily.metric`, dbt builds
each metric's feature family in `marts.account_metric_snapshots`, the model uses those
features and the reasons are phrased from the label and the unit. No metric is named in code.

Plan limits themselves are data (`billing.plan_limits`, one value per plan per metric); the
declaration says only how the limit is measured (`limit_period`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# How a metric's daily values combine over a window of days:
#   sum      - counts or amounts of events (API calls, e-mails sent): windows add the days up,
#              a day without a row counts as 0
#   level    - something held (GB stored, contacts in the database): windows average the
#              reported days; the latest reported value is the current level
#   distinct - a distinct count per day (active users): windows average the reported days
AGGREGATIONS = ("sum", "level", "distinct")
# What a plan limit on the metric caps:
#   day   - the value of one day (a daily quota; seats: users active on a day)
#   month - the total of 30 days (a monthly quota)
#   held  - the latest level (storage, records held)
LIMIT_PERIODS = ("day", "month", "held")

Text = str | dict[str, str]  # one text, or one per locale ({en: ..., ja: ...})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def localized(text: Text, locale: str) -> str:
    """`text` in `locale`; a plain string is every locale's; else `en`, else the first."""
    if isinstance(text, str):
        return text
    return text.get(locale) or text.get("en") or next(iter(text.values()))


class UsageMetric(_Strict):
    name: str = Field(max_length=48)
    label: Text  # what people call it ("API calls"); per locale or one text
    unit: Text = ""  # unit of one value, shown after numbers ("GB"); "" for plain counts
    aggregation: Literal["sum", "level", "distinct"]
    # None: no plan limits this metric; else how its usage is compared with the limit
    limit_period: Literal["day", "month", "held"] | None = None
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # `<metric>__<stat>` names the metric's feature columns (marts.account_features), so a
        # metric name may not hold a double underscore or end in one: words joined by single ones.
        if not re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", value):
            raise ValueError(
                f"usage metric name {value!r}: expected lowercase words joined by single "
                "underscores (e.g. emails_sent); a double underscore separates a metric from its "
                "statistic in feature columns (emails_sent__30d)"
            )
        return value

    @field_validator("label", "unit")
    @classmethod
    def _texts(cls, value: Text) -> Text:
        if isinstance(value, dict) and not value:
            raise ValueError("a per-locale text needs at least one locale")
        return value

    def label_in(self, locale: str) -> str:
        return localized(self.label, locale)

    def unit_in(self, locale: str) -> str:
        return localized(self.unit, locale)


class Business(_Strict):
    usage_metrics: list[UsageMetric] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Business:
        names = [m.name for m in self.usage_metrics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"usage metrics declared twice: {twice}")
        return self

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self.usage_metrics]

    @property
    def limited_metric_names(self) -> list[str]:
        """Metrics a plan limit may cap (they declare a `limit_period`)."""
        return [m.name for m in self.usage_metrics if m.limit_period is not None]

    def metric(self, name: str) -> UsageMetric:
        for m in self.usage_metrics:
            if m.name == name:
                return m
        raise KeyError(f"usage metric {name!r} is not declared; declared: {self.metric_names}")


def load_business(path: Path) -> Business:
    """Read and validate a business declaration; errors name the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"business declaration {path} does not exist (EXPANSION_BUSINESS_CONFIG; "
            "see docs/extract-contract.md, 'Usage metrics')"
        ) from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Business.model_validate(raw)
    except ValueError as exc:
        raise ValueError(f"{path}: invalid business declaration: {exc}") from exc
