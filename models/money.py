"""Amounts of money as a person reads them: in an ISO 4217 currency, for a locale.

How a currency prints in a language (a symbol before the amount, a suffix after it, the
grouping and decimal marks) is the `money:` section of the locale's phrase table
(models/phrases/<locale>.yaml); a currency the table does not list prints as its code after
the amount ("1,234 XYZ"). How many decimals a currency has is its ISO 4217 minor unit: 2,
unless listed in `MINOR_UNITS`. Reasons and the model report print whole units
(`decimals=0`).
"""

from __future__ import annotations

import math
import re

from models.phrasebook import DEFAULT_LOCALE, load_phrasebook

DEFAULT_CURRENCY = "USD"  # the reporting currency when none is set
CURRENCY_PATTERN = r"^[A-Z]{3}$"  # an ISO 4217 code

# ISO 4217 minor units of the currencies that do not have 2 decimals.
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}


def currency_code(currency: str) -> str:
    """`currency` as an ISO 4217 code (upper case); an error names a value that is not one."""
    code = str(currency).strip().upper()
    if not re.fullmatch(CURRENCY_PATTERN, code):
        raise ValueError(f"currency {currency!r}: expected an ISO 4217 code such as USD or JPY")
    return code


def currency_decimals(currency: str) -> int:
    """The currency's ISO 4217 minor unit: JPY 0, USD 2, KWD 3."""
    return MINOR_UNITS.get(currency_code(currency), 2)


def format_money(
    amount: float,
    currency: str = DEFAULT_CURRENCY,
    locale: str = DEFAULT_LOCALE,
    decimals: int | None = None,
) -> str:
    """`amount` of `currency` as written in `locale`, with `decimals` decimals (default: the
    currency's own): 1234.5 USD en -> "$1,234.50"; 1234 JPY en -> "¥1,234", ja -> "1,234円";
    1234.5 of an unlisted currency -> "1,234.50 XYZ". Negative amounts use the table's
    `negative`."""
    value = float(amount)
    if not math.isfinite(value):
        raise ValueError(f"format_money: {amount!r} is not an amount")
    code = currency_code(currency)
    places = currency_decimals(code) if decimals is None else decimals
    if places < 0:
        raise ValueError(f"format_money: decimals must be 0 or more, got {places}")
    table = load_phrasebook(locale).money
    rounded = f"{abs(value):.{places}f}"
    whole, _, fraction = rounded.partition(".")
    digits = f"{int(whole):,}".replace(",", table.group)
    if fraction:
        digits += table.decimal + fraction
    pattern = table.formats.get(code, table.other)
    money = pattern.format(amount=digits, code=code)
    if value < 0 and float(rounded) != 0.0:  # never "-$0"
        return table.negative.format(money=money)
    return money
