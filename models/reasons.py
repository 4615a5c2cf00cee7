"""Why an account scores high: top positive SHAP contributions as sales-readable phrases.

Each feature's reason template names a concept `group` (params.yaml, `reasons:`). An account
gets at most one reason per group: groups rank by the sum of their features' positive
contributions and speak through their strongest actionable feature that has a phrase.

Cost: LightGBM's `pred_contrib` (TreeSHAP) is about 7x a plain prediction of the same
booster. Measured on the demo champion (682 trees of 4 leaves, 39 features, 2-core AMD EPYC
VM, other jobs running): 110-190 us per account against 16 us for the score, i.e. 0.14 s for
850 accounts, 1.5 s for 10,000 and about 15 s per 100,000 (phrasing adds ~10%).
`score_accounts` therefore computes reasons only for the accounts of an action list
(models/score.py `reasons_for_accounts`: every account a capped touch tier holds, the first
`action_list.default_tier_reasons` of the default tier); suppressed accounts never get
reasons. Scoring 200,000 accounts (same VM, busy): 6.5-8.6 s without reasons, 2-4 s more with
reasons for 18,000 of them (200 owners' capped tiers and 1,000 more), 25 s more for all
117,000 listed ones.
"""

from __future__ import annotations

import functools
import math
import re
import string
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from models.arrays import FloatArray
from models.money import DEFAULT_CURRENCY, format_money
from models.phrasebook import DEFAULT_LOCALE, ReasonTemplate, load_phrasebook
from models.train import TrainedModel

_FORMATTER = string.Formatter()


class _Unknown:
    """Stands in for a missing snapshot value inside a phrase (the locale's word for it)."""

    def __init__(self, word: str) -> None:
        self.word = word

    def __format__(self, spec: str) -> str:
        return self.word

    def __str__(self) -> str:
        return self.word


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}"


@functools.cache
def _value_fields(locale: str, currency: str) -> dict[str, Callable[[float], Any]]:
    """The value fields (models.phrasebook.VALUE_FIELDS) of templates in `locale`: numbers are
    formatted alike in every locale, words ({up_down}, {s}) come from its phrase table, and
    amounts ({money}, {abs_money}) are whole units of `currency` written as in `locale`."""
    words = load_phrasebook(locale).values
    fields: dict[str, Callable[[float], Any]] = {
        "value": lambda v: v,
        "pct": lambda v: f"{v:.0%}",
        "abs_pct": lambda v: f"{abs(v):.0%}",
        "up_down": lambda v: words.up if v > 0 else words.down if v < 0 else words.flat,
        "int": lambda v: f"{v:,.0f}",
        "num": _num,
        "money": lambda v: format_money(v, currency, locale, decimals=0),
        "abs_money": lambda v: format_money(abs(v), currency, locale, decimals=0),
        "s": lambda v: "" if abs(v) == 1 else words.plural,
    }
    return fields


@functools.cache
def _unknown(locale: str) -> _Unknown:
    return _Unknown(load_phrasebook(locale).values.unknown)


def value_context(
    value: Any,
    names: Iterable[str] | None = None,
    locale: str = DEFAULT_LOCALE,
    currency: str = DEFAULT_CURRENCY,
) -> dict[str, Any]:
    """Formatting fields for one feature value (see the `reasons:` comment in params.yaml),
    with the words of `locale` and amounts in `currency`. `names` limits the result to those
    fields (default: all)."""
    if isinstance(value, str):
        return {"value": value}
    v = float(value)
    fields = _value_fields(locale, currency)
    wanted = fields if names is None else [n for n in names if n in fields]
    return {name: fields[name](v) for name in wanted}


@functools.cache
def field_names(text: str) -> tuple[str, ...]:
    """The names a template text formats, e.g. ("nps_latest",) for "NPS ({nps_latest:.0f})"."""
    names = (name for _, name, _, _ in _FORMATTER.parse(text) if name is not None)
    return tuple(dict.fromkeys(re.split(r"[.\[]", name, maxsplit=1)[0] for name in names))


def phrase(
    template: ReasonTemplate,
    value: Any,
    row: Mapping[Any, Any],
    *,
    currency: str = DEFAULT_CURRENCY,
) -> str | None:
    """The phrase for a feature value, or None when the template has none for it.

    `row` holds the account's snapshot columns (usable as {column} in the template). Words
    such as {up_down} are in the template's `locale`; {money} and {abs_money} are amounts in
    the reporting `currency` (that of the money columns), written as in that locale.
    """
    locale = template.locale
    if _is_missing(value):
        text, value_fields = template.when_missing, {}
    elif not isinstance(value, str) and float(value) == 0.0:
        text = template.when_zero
        value_fields = (
            value_context(value, field_names(text), locale, currency) if text is not None else {}
        )
    else:
        text = template.text
        value_fields = value_context(value, field_names(text), locale, currency)
    if text is None:
        return None
    unknown = _unknown(locale)
    context: dict[str, Any] = {}
    for name in field_names(text):
        if name in value_fields:
            context[name] = value_fields[name]
        else:
            found = row.get(name, unknown)
            context[name] = unknown if _is_missing(found) else found
    return text.format_map(context)


def shown_as_reason(
    template: ReasonTemplate, values: pd.Series
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per value: would it be shown as a reason (actionable and `phrase` gives a phrase)?

    Vectorised twin of `phrase`'s choice between text, when_zero and when_missing.
    """
    if not template.actionable:
        return np.zeros(len(values), dtype=bool)
    missing = values.isna().to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(values):
        zero = values.eq(0).fillna(False).to_numpy(dtype=bool)
    else:  # category / text: only strings, which are never "zero"
        zero = np.zeros(len(values), dtype=bool)
    return np.where(
        missing,
        template.when_missing is not None,
        np.where(zero, template.when_zero is not None, True),
    )


def _snapshot_fields(templates: Mapping[str, ReasonTemplate]) -> set[str]:
    """Names used as {field} in any template (a superset of the snapshot columns needed)."""
    return {
        name
        for template in templates.values()
        for text in (template.text, template.when_zero, template.when_missing)
        if text is not None
        for name in field_names(text)
    }


def _check_inputs(
    index: pd.Index,
    snapshots: pd.DataFrame,
    features: list[str],
    templates: Mapping[str, ReasonTemplate],
) -> None:
    without = [f for f in features if f not in templates]
    if without:
        raise ValueError(
            f"top_reasons: no reason template for feature(s) {without}; add them under "
            "`reasons:` in models/params.yaml"
        )
    if not snapshots.index.is_unique:
        raise ValueError("top_reasons: snapshots index has duplicates; expected one row per index")
    missing_rows = index.difference(snapshots.index)
    if len(missing_rows):
        raise ValueError(
            f"top_reasons: {len(missing_rows)} row(s) of X not in snapshots, e.g. "
            f"{list(missing_rows[:3])}; pass the snapshot rows X was prepared from"
        )


def _columns(n: int) -> list[str]:
    return [*(f"reason_{i}" for i in range(1, n + 1)), "reason_codes"]


def reasons_from_contributions(
    contrib: FloatArray,
    X: pd.DataFrame,
    snapshots: pd.DataFrame,
    templates: Mapping[str, ReasonTemplate],
    n: int = 3,
    *,
    currency: str = DEFAULT_CURRENCY,
) -> pd.DataFrame:
    """Top-`n` reasons per row from per-feature contributions (rows x X.columns).

    One reason per concept group: groups rank by the sum of their features' positive
    contributions; a group is shown when one of its actionable features contributes positively
    and has a phrase for its value, and it reads as the strongest of those. Non-actionable
    features never show; slots without a reason stay None. `snapshots` supplies the phrase
    context for the rows of X. Returns reason_1..reason_n and reason_codes (comma-separated
    features shown), indexed like X. Each phrase is in its template's locale (see
    `Params.localized`), with amounts in the reporting `currency`.
    """
    features = [str(c) for c in X.columns]
    _check_inputs(X.index, snapshots, features, templates)
    if contrib.shape != X.shape:
        raise ValueError(
            f"top_reasons: contributions have shape {contrib.shape}, expected {X.shape} (X)"
        )
    columns = _columns(n)
    if X.empty or n <= 0:
        return pd.DataFrame(None, index=X.index, columns=columns, dtype=object)
    rows = len(X)
    group_names = list(dict.fromkeys(templates[f].group for f in features))
    group_of = np.array([group_names.index(templates[f].group) for f in features])
    members = np.zeros((len(features), len(group_names)))
    members[np.arange(len(features)), group_of] = 1.0
    totals = np.clip(contrib, 0.0, None) @ members  # rows x groups
    shown = np.column_stack([shown_as_reason(templates[f], X[f]) for f in features]) & (contrib > 0)
    candidate = np.where(shown, contrib, -np.inf)
    best = np.zeros((rows, len(group_names)), dtype=np.intp)  # feature speaking for the group
    for g in range(len(group_names)):
        cols = np.flatnonzero(group_of == g)
        best[:, g] = cols[np.argmax(candidate[:, cols], axis=1)]
    eligible = np.isfinite(np.take_along_axis(candidate, best, axis=1))
    key = np.where(eligible, totals, -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")[:, :n]  # ties: group order in X
    chosen = np.where(
        np.take_along_axis(eligible, order, axis=1), np.take_along_axis(best, order, axis=1), -1
    )

    used = _snapshot_fields(templates)
    fields = [c for c in snapshots.columns if c in used]
    context_rows = snapshots.loc[X.index, fields].to_dict(orient="records")
    values = {j: X.iloc[:, j].to_numpy(dtype=object) for j in np.unique(chosen[chosen >= 0])}
    out: list[list[str | None]] = []
    for i in range(rows):
        texts: list[str] = []
        codes: list[str] = []
        for j in chosen[i]:
            if j < 0:
                break
            text = phrase(templates[features[j]], values[j][i], context_rows[i], currency=currency)
            if text is not None:
                texts.append(text)
                codes.append(features[j])
        out.append([*texts, *[None] * (n - len(texts)), ",".join(codes) or None])
    return pd.DataFrame(out, index=X.index, columns=columns, dtype=object)


def top_reasons(
    model: TrainedModel,
    X: pd.DataFrame,
    snapshots: pd.DataFrame,
    n: int = 3,
    target: str | None = None,
    templates: Mapping[str, ReasonTemplate] | None = None,
    *,
    locale: str = DEFAULT_LOCALE,
    currency: str = DEFAULT_CURRENCY,
) -> pd.DataFrame:
    """Top-`n` reasons for `target` (default: primary) per row; see `reasons_from_contributions`.

    `X` comes from `prepare_features(..., model.categories)`; `snapshots` holds the same rows
    (index of X must be in its index) and supplies the phrase context (e.g.
    top_companion_product_name). `templates` default to the model's own params in `locale`
    (`Params.localized`); pass the current `params.localized(locale).reasons` to change
    phrases without retraining. Amounts are in the reporting `currency`. Uses `pred_contrib`,
    which is slow: pass only the rows you need.
    """
    target = target or model.params.primary_target
    templates = model.params.localized(locale).reasons if templates is None else templates
    features = X[model.features]
    _check_inputs(X.index, snapshots, model.features, templates)
    if features.empty:
        contrib: FloatArray = np.zeros((0, len(model.features)))
    else:
        raw = model.boosters[target].predict(features, pred_contrib=True)
        contrib = np.asarray(raw, dtype=float)[:, : len(model.features)]
    return reasons_from_contributions(contrib, features, snapshots, templates, n, currency=currency)
