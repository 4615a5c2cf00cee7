"""Usage features: the columns `<metric>__<stat>` of marts.account_features, one per declared
usage metric and statistic of its family (dbt's `usage_feature_stats()` macro lists the stats).

They are found by name: a column is a usage feature when the part before its first `__` is
a declared metric (config/business.yml; metric names never hold `__`). Each reads as a reason
built from the metric's label and unit in a language and the phrase for its statistic in
that language's phrase table (`usage:` in models/phrases/<locale>.yaml); its reason group is
`usage_<metric>`, so an account gets at most one reason per metric. No metric is named here.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass

from models.business import Business, UsageMetric
from models.phrasebook import (
    DEFAULT_LOCALE,
    ReasonTemplate,
    load_phrasebook,
    phrase_file,
)

SEPARATOR = "__"  # between the metric and the statistic in a column name
GROUP_PREFIX = "usage_"  # reason group of a metric's features: usage_<metric>

_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class UsageFeature:
    """One usage feature column: `metric.name` + "__" + `stat`."""

    column: str
    metric: UsageMetric
    stat: str

    @property
    def group(self) -> str:
        return GROUP_PREFIX + self.metric.name


def usage_feature(business: Business, column: str) -> UsageFeature | None:
    """`column` as a usage feature of `business`, or None when it is not one (no `__`, or the
    part before the first `__` is not a declared metric)."""
    name, sep, stat = column.partition(SEPARATOR)
    if not sep or not stat or name not in business.metric_names:
        return None
    return UsageFeature(column, business.metric(name), stat)


def usage_features(business: Business, columns: Iterable[str]) -> list[UsageFeature]:
    """The usage features among `columns`, in the order given."""
    found = (usage_feature(business, str(c)) for c in columns)
    return [f for f in found if f is not None]


def _escaped(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def fill_metric(text: str, label: str, unit: str, unit_separator: str) -> str:
    """A phrase table `text` with {label} and {unit} filled in (braces in them escaped, so
    they print as written); the reason fields ({int}, {pct}, ...) are kept for formatting."""
    values = {"label": label, "unit": unit_separator + unit if unit else ""}
    out: list[str] = []
    for literal, name, spec, conversion in _FORMATTER.parse(text):
        out.append(_escaped(literal))
        if name is None:
            continue
        if name in values:
            out.append(_escaped(values[name]))
        else:
            out.append(
                "{"
                + name
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
    return "".join(out)


def usage_reason(feature: UsageFeature, locale: str = DEFAULT_LOCALE) -> ReasonTemplate:
    """The reason template of a usage feature in `locale` (group `usage_<metric>`)."""
    table = load_phrasebook(locale).usage
    metric = feature.metric
    phrase = table.phrase(feature.stat, metric.aggregation)
    if phrase is None:
        known = ", ".join(table.stats_of(metric.aggregation))
        raise ValueError(
            f"column {feature.column}: no phrase for the statistic {feature.stat!r} of a "
            f"{metric.aggregation} metric in {phrase_file(locale)} (`usage:`); "
            f"phrased there for {metric.aggregation} metrics: {known}"
        )
    label, unit = metric.label_in(locale), metric.unit_in(locale)
    texts = {
        key: fill_metric(text, label, unit, table.unit_separator)
        for key, text in phrase.model_dump().items()
        if text is not None
    }
    return ReasonTemplate.model_validate({"group": feature.group, "locale": locale, **texts})


def usage_reasons(
    business: Business, columns: Iterable[str], locale: str = DEFAULT_LOCALE
) -> dict[str, ReasonTemplate]:
    """Usage feature column -> its reason template in `locale`, for the usage features among
    `columns` (in the order given). A statistic without a phrase in the locale's table is an
    error naming the column and the file."""
    return {f.column: usage_reason(f, locale) for f in usage_features(business, columns)}
