"""Typed parameters of the expansion model, loaded from `models/params.yaml`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.business import Business
from models.derived import DERIVED_FEATURES
from models.phrasebook import (
    DEFAULT_LOCALE,
    VALUE_FIELDS,
    ReasonTemplate,
    fields,
    load_phrasebook,
    phrase_file,
)
from models.usage_features import usage_reasons

DEFAULT_PARAMS_PATH = Path(__file__).with_name("params.yaml")

# Columns that carry the future (labels) or describe label completeness: never features.
LEAKY_COLUMNS: frozenset[str] = frozenset(
    {
        "label_expansion",
        "label_upsell",
        "label_cross_sell",
        "expansion_mrr_next",
        "is_label_complete",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Features(_Strict):
    numeric: list[str]
    categorical: list[str]
    derived: list[str] = Field(default_factory=list)  # names in models.derived.DERIVED_FEATURES

    @property
    def all(self) -> list[str]:
        """Numeric, derived, then categorical feature names, in model column order."""
        return [*self.numeric, *self.derived, *self.categorical]

    @property
    def numeric_all(self) -> list[str]:
        """Numeric and derived (numeric) feature names, in model column order."""
        return [*self.numeric, *self.derived]


class Backtest(_Strict):
    n_cutoffs: int = Field(default=3, ge=1)
    validation_dates: int = Field(default=1, ge=1)
    min_train_dates: int = Field(default=2, ge=1)


class LightGBMParams(_Strict):
    objective: Literal["binary"] = "binary"
    learning_rate: float = Field(default=0.05, gt=0)
    num_leaves: int = Field(default=15, ge=2)
    max_depth: int = -1
    min_data_in_leaf: int = Field(default=50, ge=1)
    # Caps min_data_in_leaf at this share of a fit's training rows (None: no cap), so a
    # setting tuned on a large project still lets the trees split on a small one.
    min_data_in_leaf_share: float | None = Field(default=None, gt=0, le=0.5)
    feature_fraction: float = Field(default=0.8, gt=0, le=1)
    bagging_fraction: float = Field(default=0.8, gt=0, le=1)
    bagging_freq: int = Field(default=1, ge=0)
    lambda_l2: float = Field(default=1.0, ge=0)
    cat_smooth: float = Field(default=10.0, ge=0)
    min_data_per_group: int = Field(default=50, ge=1)
    seed: int = 42
    deterministic: bool = True
    num_threads: int = Field(default=2, ge=1)
    max_rounds: int = Field(default=1000, ge=1)
    early_stopping_rounds: int = Field(default=50, ge=1)
    early_stopping_metric: Literal["auc", "binary_logloss"] = "binary_logloss"
    imbalance: Literal["none", "is_unbalance"] = "none"
    # After early stopping (and calibration) on the validation window, refit each booster on
    # every row whose label is known (train + the gap + validation) with the same rounds.
    refit: bool = True
    # Rows known at a cut-off that the boosters and baselines learn from: past this many, a
    # hash sample of (account_id, snapshot_date) of about this size (None: every row).
    # Validation and test rows are never sampled.
    max_fit_rows: int | None = Field(default=None, ge=1)
    # Feature -> +1 (score may only rise with the value) or -1 (only fall). Numeric features.
    monotone_constraints: dict[str, Literal[-1, 1]] = Field(default_factory=dict)

    def booster_params(self) -> dict[str, Any]:
        """Parameters for `lightgbm.train` (rounds and early stopping are passed separately)."""
        return {
            "objective": self.objective,
            "metric": self.early_stopping_metric,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2,
            "cat_smooth": self.cat_smooth,
            "min_data_per_group": self.min_data_per_group,
            "seed": self.seed,
            "deterministic": self.deterministic,
            # With `deterministic`, removes the row/col-wise auto choice. Column-wise: 200
            # rounds on the S backtest's 97k training rows x 39 features take 2.1 s CPU against
            # 3.5 s row-wise (few features, many rows, 4 leaves).
            "force_col_wise": True,
            "num_threads": self.num_threads,
            "is_unbalance": self.imbalance == "is_unbalance",
            "verbosity": -1,
        }

    def leaf_rows(self, n_train_rows: int) -> int:
        """min_data_in_leaf for a fit on `n_train_rows` rows (`min_data_in_leaf_share` cap)."""
        if self.min_data_in_leaf_share is None:
            return self.min_data_in_leaf
        return max(1, min(self.min_data_in_leaf, int(n_train_rows * self.min_data_in_leaf_share)))

    def monotone_vector(self, features: list[str]) -> list[int]:
        """`monotone_constraints` as LightGBM's per-column list (0 = unconstrained)."""
        return [int(self.monotone_constraints.get(f, 0)) for f in features]


class Calibration(_Strict):
    method: Literal["sigmoid", "isotonic"] = "sigmoid"
    # With lightgbm.refit: folds (by account) of the out-of-fold scores the calibrator of the
    # refit booster is fitted on; 0: fitted on the early-stopped booster's validation scores.
    refit_folds: int = Field(default=3, ge=0)


class Baseline(_Strict):
    logistic_c: float = Field(default=1.0, gt=0)
    logistic_max_iter: int = Field(default=2000, ge=1)


class Quality(_Strict):
    """The model's own bars and the champion rule (judged by `models.acceptance`)."""

    # The champion comparison is on ROC AUC; pr_auc is accepted so older params still load.
    promotion_metric: Literal["roc_auc", "pr_auc"] = "roc_auc"
    min_roc_auc: float = Field(default=0.60, ge=0, le=1)
    max_brier: float = Field(default=0.20, ge=0, le=1)
    promotion_margin: float = Field(default=0.005, ge=0)


class Acceptance(_Strict):
    """Bars against references (baseline, oracle) and on calibration, and how the bootstrap
    intervals of every bar are drawn (`models.acceptance`)."""

    min_oracle_auc_ratio: float = Field(default=0.95, ge=0, le=1)
    must_beat_baseline: str | None = "logistic"
    max_ece: float = Field(default=0.03, ge=0, le=1)
    ece_bins: int = Field(default=10, ge=1)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    resamples: int = Field(default=1000, ge=1)
    seed: int = 0


class Offers(_Strict):
    """How the next-best offer is chosen and phrased (models/offers.py); what is offered and
    its value come from the catalogue (dbt: account_offers)."""

    choose_by: Literal["expected_mrr", "probability"] = "expected_mrr"
    # The texts, in English ({change}: limit_change / limit_unlimited, or "" without a limit)
    cross_sell: str = "cross-sell: {product}"
    upsell_tier: str = "upsell: {plan}{change}"
    upsell_units: str = "upsell: +{units} seats"
    upsell_addon: str = "upsell: {plan} x{units}{change}"
    limit_change: str = " ({label} {before} → {after}{unit})"
    limit_unlimited: str = " ({label} {before}{unit} → unlimited)"


class MetricText(_Strict):
    """A usage metric as people read it in one language (config/business.yml)."""

    label: str
    unit: str = ""


# Touch-tier keys before the money columns lost their `_usd` (issue #16): the params saved with
# an older model still hold them, so they are read as the new keys and the model still loads.
_RENAMED_TIER_KEYS = {"min_mrr_usd": "min_mrr", "min_expected_mrr_usd": "min_expected_mrr"}


class TouchTier(_Strict):
    name: str
    min_mrr: float | None = None  # in the reporting currency, like the mrr column
    segments: list[str] = Field(default_factory=list)
    min_expected_mrr: float | None = None
    capacity: int | None = Field(default=None, ge=0)
    capacity_scope: Literal["owner", "overall"] = "owner"

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, raw: Any) -> Any:
        """The old `*_usd` keys (`_RENAMED_TIER_KEYS`) as aliases of the new ones."""
        if not isinstance(raw, dict) or not set(raw) & set(_RENAMED_TIER_KEYS):
            return raw
        out = dict(raw)
        for old, new in _RENAMED_TIER_KEYS.items():
            if old in out:
                if new in out:
                    raise ValueError(f"touch tier: {old} is the old name of {new}; give one")
                out[new] = out.pop(old)
        return out


class TouchTiers(_Strict):
    tiers: list[TouchTier]
    default: str

    @model_validator(mode="after")
    def _check(self) -> TouchTiers:
        names = [t.name for t in self.tiers] + [self.default]
        if len(set(names)) != len(names):
            raise ValueError(f"touch tier names must be unique, got {names}")
        return self


class ActionList(_Strict):
    """The order of the action list and the reasons it carries (models/ranking.py)."""

    rank_by: Literal["balanced", "expected_mrr", "probability"] = "balanced"
    # w of the balanced ranking (p_expansion x offer MRR ** w), or auto: chosen on the backtest
    value_weight: Literal["auto"] | float = "auto"
    auto_weights: list[float] = Field(default_factory=lambda: [1.0, 0.75, 0.5, 0.25, 0.0])
    min_hit_rate_ratio: float = Field(default=0.9, ge=0, le=1)
    hit_rate_at: int = Field(default=100, ge=1)  # N of the hit rate that decides auto
    default_tier_reasons: int = Field(default=1000, ge=0)

    @model_validator(mode="after")
    def _check(self) -> ActionList:
        weights = [self.value_weight] if self.value_weight != "auto" else []
        bad = [w for w in [*weights, *self.auto_weights] if not 0.0 <= float(w) <= 1.0]
        if bad:
            raise ValueError(f"action_list: value weights must be in [0, 1], got {bad}")
        if not self.auto_weights:
            raise ValueError("action_list.auto_weights: give at least one weight")
        return self


class Condition(_Strict):
    column: str
    op: Literal["gt", "ge", "lt", "le", "eq", "ne"]
    value: float


class SuppressionRule(_Strict):
    reason: str
    when: list[Condition] = Field(min_length=1)


class DeclaredFeature(_Strict):
    """A feature declared next to its column in dbt (`meta.feature`, `meta.reason`)."""

    kind: Literal["numeric", "categorical"]
    reason: ReasonTemplate


class Params(_Strict):
    features: Features
    targets: dict[str, str]
    primary_target: str = "expansion"
    label_horizon_days: int = Field(default=90, ge=1)
    backtest: Backtest = Backtest()
    lightgbm: LightGBMParams = LightGBMParams()
    calibration: Calibration = Calibration()
    baseline: Baseline = Baseline()
    quality: Quality = Quality()
    acceptance: Acceptance = Acceptance()
    offers: Offers = Offers()
    touch_tiers: TouchTiers
    action_list: ActionList = ActionList()
    suppression: list[SuppressionRule] = Field(default_factory=list)
    reasons: dict[str, ReasonTemplate]
    # Label and unit of each declared usage metric, in the locale with_usage_features phrased
    # the usage reasons in (offers print them); a metric without one prints its name.
    metric_texts: dict[str, MetricText] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Params:
        features = self.features.all
        duplicated = sorted({f for f in features if features.count(f) > 1})
        if duplicated:
            raise ValueError(f"features listed twice in params: {duplicated}")
        leaky = sorted(set(features) & (LEAKY_COLUMNS | set(self.targets.values())))
        if leaky:
            raise ValueError(f"label columns must not be features (leakage): {leaky}")
        if self.primary_target not in self.targets:
            raise ValueError(
                f"primary_target {self.primary_target!r} is not one of targets {sorted(self.targets)}"
            )
        if not {"expansion", "upsell", "cross_sell"} <= set(self.targets):
            raise ValueError(
                f"targets must include expansion, upsell and cross_sell; got {sorted(self.targets)}"
            )
        missing = [f for f in features if f not in self.reasons]
        if missing:
            raise ValueError(f"features without a reason phrase under `reasons:`: {missing}")
        unknown = [f for f in self.features.derived if f not in DERIVED_FEATURES]
        if unknown:
            raise ValueError(
                f"features.derived {unknown} are not defined in models/derived.py "
                f"(known: {sorted(DERIVED_FEATURES)})"
            )
        for locale in sorted({t.locale for t in self.reasons.values()}):
            load_phrasebook(locale)  # a ValueError naming the missing phrase table
        numeric = set(self.features.numeric_all)
        bad = sorted(set(self.lightgbm.monotone_constraints) - numeric)
        if bad:
            raise ValueError(
                f"lightgbm.monotone_constraints on non-numeric or unknown features: {bad}"
            )
        return self

    def with_declared_features(self, declared: Mapping[str, DeclaredFeature]) -> Params:
        """These params plus the features declared in the dbt project (appended in the order
        given, after the ones listed here). A feature listed in params.yaml keeps its entry
        there; a declared reason phrase is used only when params.yaml has none."""
        if not declared:
            return self
        data = self.model_dump(mode="json")
        listed = set(self.features.all)
        for name, feature in declared.items():
            if name not in listed:
                data["features"][feature.kind].append(name)
            data["reasons"].setdefault(name, feature.reason.model_dump(mode="json"))
        return Params.model_validate(data)

    def with_usage_features(
        self, business: Business, columns: Iterable[str], locale: str = DEFAULT_LOCALE
    ) -> Params:
        """These params plus the usage features among `columns` (`<declared metric>__<stat>`,
        models/usage_features.py) as numeric features, appended in the order given, with their
        reasons phrased in `locale`, and every declared metric's label and unit in `locale`
        (`metric_texts`). A feature listed here already keeps its entry and its reason phrase
        (as `with_declared_features` does)."""
        reasons = usage_reasons(business, columns, locale)
        data = self.model_dump(mode="json")
        data["metric_texts"] = {
            m.name: {"label": m.label_in(locale), "unit": m.unit_in(locale)}
            for m in business.usage_metrics
        }
        listed = set(self.features.all)
        for name, reason in reasons.items():
            if name not in listed:
                data["features"]["numeric"].append(name)
            data["reasons"].setdefault(name, reason.model_dump(mode="json"))
        return Params.model_validate(data)

    def localized(self, locale: str = DEFAULT_LOCALE) -> Params:
        """These params with the texts a person reads in `locale`, from its phrase table
        (models/phrases/<locale>.yaml): the reason phrase of every feature its `reasons:`
        phrases, the offer labels (`offers:`) and the suppression reasons (`suppression:`,
        keyed by the reason as written here). A text the table does not phrase stays as it is
        (in English, or for usage features in the locale `with_usage_features` phrased them
        in); a feature's group and actionability never change. The English table phrases
        nothing, so `localized("en")` is these params; localizing params twice to the same
        locale changes nothing, to another one is an error (localize the params as loaded)."""
        book = load_phrasebook(locale)
        foreign = sorted({t.locale for t in self.reasons.values()} - {locale, DEFAULT_LOCALE})
        if foreign:
            raise ValueError(
                f"params with reasons in {foreign} cannot be localized to {locale!r}: localize "
                "the params as loaded (English), and phrase usage features in the same locale"
            )
        reasons = dict(self.reasons)
        for feature, template in self.reasons.items():
            translated = book.reasons.get(feature)
            if translated is None:
                continue
            given = {k: v for k, v in translated.model_dump().items() if v is not None}
            expected = {
                k for k in ("text", "when_zero", "when_missing") if getattr(template, k) is not None
            }
            if set(given) != expected:
                raise ValueError(
                    f"{phrase_file(locale)}: reasons.{feature} gives {sorted(given)}, but "
                    f"models/params.yaml phrases it with {sorted(expected)}; give the same"
                )
            allowed = {*VALUE_FIELDS, *(f for k in expected for f in fields(getattr(template, k)))}
            for text in given.values():
                unknown = sorted(fields(text) - allowed)
                if unknown:
                    raise ValueError(
                        f"{phrase_file(locale)}: reasons.{feature} {text!r} formats {unknown}, "
                        f"which the English phrase does not use (allowed: {sorted(allowed)})"
                    )
            reasons[feature] = template.model_copy(update={**given, "locale": locale})
        offers = (
            self.offers
            if book.offers is None
            else self.offers.model_copy(update=book.offers.model_dump())
        )
        suppression = [
            rule.model_copy(update={"reason": book.suppression.get(rule.reason, rule.reason)})
            for rule in self.suppression
        ]
        return self.model_copy(
            update={"reasons": reasons, "offers": offers, "suppression": suppression}
        )

    @property
    def label_columns(self) -> list[str]:
        """Label columns of all targets, in target order."""
        return list(self.targets.values())


def load_params(path: Path | None = None) -> Params:
    """Read and validate the params YAML (default: `models/params.yaml`)."""
    path = path or DEFAULT_PARAMS_PATH
    with path.open(encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValueError as exc:
        raise ValueError(f"{path}: invalid model parameters: {exc}") from exc
