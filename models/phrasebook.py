"""Words and phrases per language: `models/phrases/<locale>.yaml`, and the reason template.

A phrase table holds, for one locale:

* `values`: the words the reason fields print (`{up_down}`, `{s}`, a missing value), so a
  template in that language reads naturally (models/reasons.py formats them);
* `usage`: the reason phrases of usage features, by statistic (models/usage_features.py
  fills in each metric's label and unit);
* `money`: how an amount prints in each currency (models/money.py);
* `reasons`, `offers`, `suppression`: this language's phrases for the texts of
  models/params.yaml (reason phrases by feature, offer labels, suppression reasons by their
  English text), which `Params.localized` puts in place of the English ones; the English
  table has none (params.yaml is in English) and a text without a phrase here stays English;
* `report`: the model report's texts by name (models/report.py); a name missing here is
  taken from the English table.

Adding a language is adding a file; nothing in code names a phrase.
"""

from __future__ import annotations

import functools
import re
import string
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.business import AGGREGATIONS

PHRASES_DIR = Path(__file__).with_name("phrases")
DEFAULT_LOCALE = "en"
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]+)*$"
# The fields a template formats from the feature's own value (models/reasons.py, and the
# `reasons:` comment in models/params.yaml); any other {name} is a snapshot column.
VALUE_FIELDS = ("value", "pct", "abs_pct", "up_down", "int", "num", "money", "abs_money", "s")
# The fields a usage phrase fills in from the metric's declaration (config/business.yml).
METRIC_FIELDS = ("label", "unit")

Aggregation = Literal["sum", "level", "distinct"]
_FORMATTER = string.Formatter()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReasonTemplate(_Strict):
    """How one feature reads as a reason (see the `reasons:` comment in params.yaml)."""

    group: str = Field(pattern=r"^[a-z][a-z0-9_]*$")  # concept: at most one reason per group
    text: str
    when_zero: str | None = None
    when_missing: str | None = None
    actionable: bool = True  # false: counts towards its group, never shown as a reason
    # The language of the texts: the words of {up_down}, {s} and a missing value come from
    # models/phrases/<locale>.yaml.
    locale: str = Field(default=DEFAULT_LOCALE, pattern=LOCALE_PATTERN)


class ValueWords(_Strict):
    """What {up_down}, {s} and a missing snapshot value print in this language."""

    up: str
    down: str
    flat: str
    plural: str  # {s}: printed unless the value is 1 ("" where nouns do not inflect)
    unknown: str


class Phrase(_Strict):
    """A reason phrase: text, and optionally when_zero / when_missing (as under `reasons:` in
    params.yaml)."""

    text: str
    when_zero: str | None = None
    when_missing: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_text(cls, raw: Any) -> Any:
        return {"text": raw} if isinstance(raw, str) else raw

    @property
    def texts(self) -> list[str]:
        return [t for t in (self.text, self.when_zero, self.when_missing) if t is not None]


def fields(text: str) -> set[str]:
    """The names a text formats ({name} or {name:spec}), e.g. {"int", "s"}."""
    return {name for _, name, _, _ in _FORMATTER.parse(text) if name is not None}


class UsagePhrases(_Strict):
    """Usage feature phrases: stat -> aggregation -> phrase (see models/phrases/en.yaml)."""

    unit_separator: str = " "  # printed between a number and the unit (none without a unit)
    stats: dict[str, dict[Aggregation, Phrase]]

    @field_validator("stats", mode="before")
    @classmethod
    def _by_aggregation(cls, raw: Any) -> Any:
        """A stat's entry is one phrase (text, or text/when_zero/when_missing) for every
        aggregation, or a mapping aggregation -> phrase for the aggregations it exists for."""
        if not isinstance(raw, dict):
            return raw
        out: dict[str, Any] = {}
        for stat, entry in raw.items():
            if isinstance(entry, dict) and entry and set(entry) <= set(AGGREGATIONS):
                out[stat] = dict(entry)
            else:
                out[stat] = dict.fromkeys(AGGREGATIONS, entry)
        return out

    @model_validator(mode="after")
    def _check_fields(self) -> UsagePhrases:
        allowed = {*VALUE_FIELDS, *METRIC_FIELDS}
        for stat, by_aggregation in self.stats.items():
            if not re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", stat):
                raise ValueError(f"usage stat {stat!r}: expected lowercase words (e.g. trend_28d)")
            for aggregation, phrase in by_aggregation.items():
                for text in phrase.texts:
                    unknown = sorted(fields(text) - allowed)
                    if unknown:
                        raise ValueError(
                            f"usage phrase {stat}/{aggregation} {text!r}: unknown field(s) "
                            f"{unknown}; expected {{label}}, {{unit}} or one of {list(VALUE_FIELDS)}"
                        )
        return self

    def phrase(self, stat: str, aggregation: str) -> Phrase | None:
        return self.stats.get(stat, {}).get(aggregation)  # type: ignore[call-overload]

    def stats_of(self, aggregation: str) -> list[str]:
        """The stats this table phrases for metrics of `aggregation`, in table order."""
        return [s for s, by_agg in self.stats.items() if aggregation in by_agg]


class MoneyFormat(_Strict):
    """How amounts print in this language (models/money.py)."""

    group: str = ","  # between groups of three digits
    decimal: str = "."  # before the decimals
    negative: str = "-{money}"  # a negative amount; {money}: the amount without its sign
    # ISO 4217 code -> pattern: {amount} the digits (e.g. "${amount}", "{amount}円")
    formats: dict[str, str] = Field(default_factory=dict)
    other: str = "{amount} {code}"  # a currency not in `formats`; {code}: its ISO code

    @model_validator(mode="after")
    def _check(self) -> MoneyFormat:
        for code, pattern in {**self.formats, "other": self.other}.items():
            if code != "other" and not re.fullmatch(r"[A-Z]{3}", code):
                raise ValueError(f"money.formats: {code!r} is not an ISO 4217 code such as JPY")
            if "amount" not in fields(pattern) or not fields(pattern) <= {"amount", "code"}:
                raise ValueError(
                    f"money pattern {code} {pattern!r}: expected {{amount}} (and at most {{code}})"
                )
        if fields(self.negative) != {"money"}:
            raise ValueError(f"money.negative {self.negative!r}: expected exactly {{money}}")
        return self


# The offer texts of params.yaml (`offers:`) and the fields each one formats.
OFFER_LABEL_FIELDS: dict[str, set[str]] = {
    "cross_sell": {"product"},
    "upsell_tier": {"plan", "change"},
    "upsell_units": {"units"},
    "upsell_addon": {"plan", "units", "change"},
    "limit_change": {"label", "before", "after", "unit"},
    "limit_unlimited": {"label", "before", "unit"},
}


class OfferLabels(_Strict):
    """This language's offer texts (`offers:` in params.yaml has the English ones)."""

    cross_sell: str
    upsell_tier: str
    upsell_units: str
    upsell_addon: str
    limit_change: str
    limit_unlimited: str

    @model_validator(mode="after")
    def _check(self) -> OfferLabels:
        for name, allowed in OFFER_LABEL_FIELDS.items():
            text = getattr(self, name)
            if fields(text) != allowed:
                expected = ", ".join(f"{{{f}}}" for f in sorted(allowed)) or "no field"
                raise ValueError(f"offers.{name} {text!r}: expected {expected}")
        return self


class Phrasebook(_Strict):
    locale: str
    values: ValueWords
    usage: UsagePhrases
    money: MoneyFormat
    reasons: dict[str, Phrase] = Field(default_factory=dict)  # feature -> phrase
    offers: OfferLabels | None = None
    suppression: dict[str, str] = Field(default_factory=dict)  # English reason -> this one
    report: dict[str, str] = Field(default_factory=dict)  # text name -> text


def phrase_file(locale: str) -> Path:
    return PHRASES_DIR / f"{locale}.yaml"


def shipped_locales() -> list[str]:
    """Locales with a phrase table in models/phrases/."""
    return sorted(p.stem for p in PHRASES_DIR.glob("*.yaml"))


@functools.cache
def load_phrasebook(locale: str = DEFAULT_LOCALE) -> Phrasebook:
    """The phrase table of `locale`; errors name the file and what is wrong."""
    if not re.fullmatch(LOCALE_PATTERN, locale):
        raise ValueError(f"locale {locale!r}: expected a language code such as en or ja")
    path = phrase_file(locale)
    if not path.is_file():
        raise ValueError(
            f"no phrase table for locale {locale!r}: {path} does not exist "
            f"(shipped: {', '.join(shipped_locales())})"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Phrasebook.model_validate({"locale": locale, **raw})
    except ValueError as exc:
        raise ValueError(f"{path}: invalid phrase table: {exc}") from exc
