"""Exact decimals written as JSON *numbers*.

Some documented responses show amounts as numbers (Cryptomus' payout `balance`, Moneroo's
`amount`), and typed clients decode them as such. pydantic-core writes a Decimal as a
string, and a float would not be exact; so the value is marked as text and the mark is
turned into the bare number in the serialized bytes.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from paydesk.money import plain

#: U+2063 (invisible separator) and "#": no text a client sends reaches a marked field.
_NUMBER_MARK = "\u2063#"
_MARKED = re.compile(rb'"\xe2\x81\xa3#(-?[0-9]+(?:\.[0-9]+)?)"')


def json_number(value: Decimal) -> Any:
    """`value` to be written as a JSON number, exactly (integers without a fraction)."""
    return _NUMBER_MARK + plain(value)


def with_json_numbers(body: bytes) -> bytes:
    """The serialized body with every marked value turned into its bare number."""
    return _MARKED.sub(rb"\1", body)
