"""Amounts in a currency for a locale (models/money.py, `money:` of the phrase tables)."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import pytest

from models.money import currency_decimals, format_money
from models.phrasebook import shipped_locales


@pytest.mark.parametrize(
    ("currency", "locale", "expected"),
    [
        ("USD", "en", "$1,234"),
        ("EUR", "en", "€1,234"),
        ("GBP", "en", "£1,234"),
        ("JPY", "en", "¥1,234"),
        ("JPY", "ja", "1,234円"),
        ("USD", "ja", "$1,234"),
        ("XYZ", "en", "1,234 XYZ"),
        ("XYZ", "ja", "1,234 XYZ"),
    ],
)
def test_whole_units_by_currency_and_locale(currency: str, locale: str, expected: str) -> None:
    assert format_money(1234.4, currency, locale, decimals=0) == expected


def test_the_currency_s_own_decimals() -> None:
    assert format_money(1234.5) == "$1,234.50"
    assert format_money(1234.5, "EUR") == "€1,234.50"
    assert format_money(1234.4, "JPY", "ja") == "1,234円"  # JPY has no decimals
    assert format_money(1234.4, "JPY") == "¥1,234"
    assert format_money(12.3456, "KWD") == "12.346 KWD"  # 3 decimals
    assert (currency_decimals("JPY"), currency_decimals("USD"), currency_decimals("xyz")) == (
        0,
        2,
        2,
    )


def test_negative_amounts_and_rounding_to_zero() -> None:
    assert format_money(-1234.4, "USD", decimals=0) == "-$1,234"
    assert format_money(-1234.4, "JPY", "ja") == "-1,234円"
    assert format_money(-0.3, "USD", decimals=0) == "$0"  # never "-$0"


def test_a_code_is_an_iso_4217_code() -> None:
    assert format_money(5, "jpy", "ja") == "5円"
    with pytest.raises(ValueError, match="'dollar': expected an ISO 4217 code"):
        format_money(5, "dollar")
    with pytest.raises(ValueError, match="not an amount"):
        format_money(math.nan)


def test_every_shipped_locale_writes_the_main_currencies() -> None:
    for locale in shipped_locales():
        for currency in ("USD", "EUR", "GBP", "JPY"):
            assert "1,234" in format_money(1234, currency, locale, decimals=0)
            assert currency not in format_money(1234, currency, locale, decimals=0)


def _literals(source: str) -> list[str]:
    """The string literals of a module (f-strings as written), docstrings left out."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            found.append(ast.get_source_segment(source, node) or "")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            found.append(node.value)
    return found


def test_no_currency_is_written_in_the_model_code() -> None:
    """Amounts print through models/money.py: no module of models/ spells a currency sign,
    and the report template has none."""
    signs = re.compile(r"\$\s*\{|\$\d|[€£¥円]|^USD$")
    models = Path(__file__).resolve().parents[2] / "models"
    found = {
        path.name: hits
        for path in sorted(models.glob("*.py"))
        if path.name != "money.py"  # DEFAULT_CURRENCY and the ISO minor units
        for hits in [[s for s in _literals(path.read_text()) if signs.search(s)]]
        if hits
    }
    assert found == {}
    template = (models / "report_template.html").read_text(encoding="utf-8")
    assert not re.search(r"\$\d|[€£¥円]", template)
