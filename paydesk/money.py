"""Exact money arithmetic: `Decimal` only, with enough precision for 30-digit amounts
carrying 18 fractional digits (the widest a token can need).

Nothing in Paydesk turns an amount into a float. Amounts arrive as JSON text and are parsed
straight into `Decimal`; they leave as fixed-point strings.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, ROUND_UP, Context, Decimal, InvalidOperation, localcontext

#: Precision for intermediate results: 30 integer digits + 18 fractional + guard digits.
PRECISION = 80
#: Significant digits a derived exchange rate keeps (an inverse has no finite expansion).
RATE_PRECISION = 28

#: Contexts for single operations (a `localcontext()` per call costs more than the math).
MONEY = Context(prec=PRECISION)
RATES = Context(prec=RATE_PRECISION)

ZERO = Decimal(0)
HUNDRED = Decimal(100)

_NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


@contextmanager
def money_context() -> Iterator[Context]:
    """A decimal context wide enough that no money operation rounds implicitly."""
    with localcontext(MONEY) as ctx:
        yield ctx


def parse_decimal(value: object) -> Decimal | None:
    """Parse a JSON number or numeric string into a finite Decimal, or None if it is not one.

    Accepts what PHP's `is_numeric` accepts (Cryptomus is a PHP application), including
    exponents such as ``"1e-05"`` produced by ``str(float)`` in some clients.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        text = value.strip()
        if not _NUMERIC.match(text):
            return None
        try:
            return Decimal(text)
        except InvalidOperation:  # pragma: no cover - the regex admits only valid literals
            return None
    return None


@contextmanager
def rate_context() -> Iterator[Context]:
    """The context derived rates (inverses, crosses) are computed in."""
    with localcontext(RATES) as ctx:
        yield ctx


@functools.cache
def quantum(places: int) -> Decimal:
    return Decimal(1).scaleb(-places)


def round_half_up(amount: Decimal, places: int) -> Decimal:
    """Round to `places` decimals, halves away from zero (the rounding merchants expect)."""
    return amount.quantize(quantum(places), rounding=ROUND_HALF_UP, context=MONEY)


def round_up(amount: Decimal, places: int) -> Decimal:
    """Round away from zero: used for what a payer owes, so the merchant is never short."""
    return amount.quantize(quantum(places), rounding=ROUND_UP, context=MONEY)


def fixed(amount: Decimal, places: int) -> str:
    """Fixed-point text with exactly `places` decimals, as the APIs print amounts."""
    return f"{round_half_up(amount, places):f}"


def plain(amount: Decimal) -> str:
    """Shortest fixed-point text without exponent or trailing zeros ("0.5", "10000000")."""
    text = f"{amount:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def percent_of(amount: Decimal, percent: Decimal) -> Decimal:
    return MONEY.divide(MONEY.multiply(amount, percent), HUNDRED)


def fixed_at_least(amount: Decimal, places: int) -> str:
    """Fixed-point text with at least `places` decimals and every significant one after."""
    exponent = amount.normalize().as_tuple().exponent
    needed = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return fixed(amount, max(places, needed))
