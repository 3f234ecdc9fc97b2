"""Moneroo webhook bodies (spec moneroo-api 8.3-8.5): `{"event": ..., "data": {...}}`,
written byte for byte as JavaScript's `JSON.stringify` writes it and signed with the
endpoint's secret in `X-Moneroo-Signature`.

Moneroo's own Node sample verifies the HMAC over `JSON.stringify(JSON.parse(body))`, so
the bytes sent must survive that round trip unchanged: compact separators, raw UTF-8, no
`\\/`, whole amounts as integers, and object keys in the order a JavaScript object keeps
them. The body depends only on the event's snapshot, so every retry sends the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from decimal import Decimal
from typing import Any

from paydesk.api.numbers import json_number, with_json_numbers

SIGNATURE_HEADER = "X-Moneroo-Signature"

#: A Python str holds surrogates only unpaired; JSON.stringify writes those as escapes.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
#: Keys a JavaScript object orders first, ascending: canonical array indices.
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]{0,9}")
_MAX_ARRAY_INDEX = 2**32 - 2


def js_json(value: Any) -> bytes:
    """`value` as `JSON.stringify(value)` writes it (amounts marked by `json_number` become
    bare numbers)."""
    text = json.dumps(_js_ordered(value), separators=(",", ":"), ensure_ascii=False)
    text = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return with_json_numbers(text.encode())


def _js_ordered(value: Any) -> Any:
    """Objects with their keys in JavaScript's order: array-index keys first, ascending,
    then the rest as inserted (a receiver's `JSON.parse` reorders `{"b":1,"2":0}`)."""
    if isinstance(value, dict):
        indices = sorted((k for k in value if _is_array_index(k)), key=int)
        named = [k for k in value if not _is_array_index(k)]
        return {k: _js_ordered(value[k]) for k in (*indices, *named)}
    if isinstance(value, list):
        return [_js_ordered(item) for item in value]
    return value


def _is_array_index(key: str) -> bool:
    return _ARRAY_INDEX.fullmatch(key) is not None and int(key) <= _MAX_ARRAY_INDEX


def payload(event: dict[str, Any]) -> dict[str, Any]:
    """The body's object from a recorded event (`{"event", "environment", "data"}` with
    the snapshot's amounts as exact text)."""
    snapshot: dict[str, Any] = event["data"]
    data = {key: _member(key, value) for key, value in snapshot.items()}
    return {"event": event["event"], "data": data}


def _member(key: str, value: Any) -> Any:
    if key == "amount" and value is not None:
        return json_number(Decimal(value))
    if key == "customer" and isinstance(value, dict):
        return _customer(value)
    return value


def _customer(customer: dict[str, Any]) -> dict[str, Any]:
    """Both spellings of the names: the API's snake_case and the camelCase of the docs'
    webhook samples, which receivers in the wild read."""
    named: dict[str, Any] = {}
    for key, value in customer.items():
        named[key] = value
        if key == "last_name":
            named["firstName"] = customer.get("first_name")
            named["lastName"] = value
    return named


def body(event: dict[str, Any]) -> bytes:
    return js_json(payload(event))


def signature(secret: str, raw: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of the exact body bytes, keyed with the secret's UTF-8."""
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def signed(event: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    """The body and the header that signs it."""
    raw = body(event)
    return raw, {SIGNATURE_HEADER: signature(secret, raw)}
