"""The model report's HTML building blocks: escaping, number formats, its texts in one locale
and currency (`Texts`), tables and figures. No section of the report lives here."""

from __future__ import annotations

import html
import math
import string
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from models.charts import figure
from models.money import currency_code, format_money
from models.phrasebook import DEFAULT_LOCALE, load_phrasebook, phrase_file

_FORMATTER = string.Formatter()


# --- small HTML helpers ---------------------------------------------------------------------


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def fmt(value: Any, spec: str = "") -> str:
    if missing(value):
        return "&ndash;"
    try:
        return esc(format(value, spec))
    except (TypeError, ValueError):
        return esc(value)


def codes(names: Iterable[Any]) -> str:
    return ", ".join(f"<code>{esc(n)}</code>" for n in names)


class Texts:
    """The report's texts in one locale (the English table's for any it leaves out) and its
    amounts in one currency."""

    def __init__(self, locale: str, currency: str) -> None:
        self.locale, self.currency = locale, currency_code(currency)
        self._own = load_phrasebook(locale).report
        self._english = load_phrasebook(DEFAULT_LOCALE).report

    def plain(self, key: str, **fields: Any) -> str:
        """The text `key` with its {fields} filled in, as plain text."""
        text = self._own.get(key, self._english.get(key))
        if text is None:
            raise KeyError(f"no report text {key!r} in {phrase_file(DEFAULT_LOCALE)} (`report:`)")
        return text.format(**fields)

    def __call__(self, key: str, **fields: str) -> str:
        """The text `key` as HTML, its {fields} filled in with the HTML given."""
        text = self._own.get(key, self._english.get(key))
        if text is None:
            raise KeyError(f"no report text {key!r} in {phrase_file(DEFAULT_LOCALE)} (`report:`)")
        out: list[str] = []
        for literal, name, _, _ in _FORMATTER.parse(text):
            out.append(html.escape(literal, quote=False))
            if name is not None:
                out.append(fields[name])
        return "".join(out)

    def money(self, value: Any, decimals: int | None = 0) -> str:
        """An amount as HTML (whole units unless `decimals` says otherwise; None: the
        currency's own decimals), "&ndash;" when missing."""
        if missing(value):
            return "&ndash;"
        return esc(format_money(float(value), self.currency, self.locale, decimals))

    def join(self, items: Iterable[str]) -> str:
        return esc(self.plain("list_separator")).join(items)


def html_table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: Sequence[bool] | None = None,
    css: str = "",
) -> str:
    """HTML table; header and cells are already escaped/formatted HTML."""
    numeric = numeric or [False] * len(header)
    head = "".join(
        f'<th class="num">{h}</th>' if n else f"<th>{h}</th>"
        for h, n in zip(header, numeric, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if n else f"<td>{c}</td>"
            for c, n in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure_html(chart_id: str, uri: str, t: Texts) -> str:
    name = chart_id.replace("-", "_")
    return figure(
        uri,
        t.plain(f"chart_{name}_title"),
        t.plain(f"chart_{name}_caption"),
        chart_id,
        title_end=t.plain("chart_title_end"),
    )
