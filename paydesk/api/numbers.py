"""Exact decimals written as JSON *numbers*.

Some documented responses show amounts as numbers (Cryptomus' payout `balance`, Moneroo's
`amount`), and typed clients decode them as such. pydantic-core writes a Decimal as a
string, and a float would not be exact; so the value is marked as text and the mark is
turned into the bare number in the serialized bytes.
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal
from typing import Any

from paydesk.money import plain

#: A mark no client can write: U+2063 (invisible separator) and a secret drawn when the
#: process starts. Text a client sent that happens to look like a marked number stays text.
_NONCE = secrets.token_hex(12)
_NUMBER_MARK = f"\u2063{_NONCE}#"
_MARKED = re.compile(rb'"\xe2\x81\xa3' + _NONCE.encode() + rb'#(-?[0-9]+(?:\.[0-9]+)?)"')


def json_number(value: Decimal) -> Any:
    """`value` to be written as a JSON number, exactly (integers without a fraction)."""
    return _NUMBER_MARK + plain(value)


def with_json_numbers(body: bytes) -> bytes:
    """The serialized body with every marked value turned into its bare number."""
    return _MARKED.sub(rb"\1", body)
