"""Request authentication of the Cryptomus dialect.

    sign = md5_hex(base64(raw_body) + api_key)

The signature is checked over the bytes exactly as received (clients serialise JSON in
incompatible ways, and all of them work against Cryptomus), in constant time, before the
body is parsed at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fastapi import Request

from paydesk.api.cryptomus.errors import CryptomusError
from paydesk.context import Context
from paydesk.merchants.service import KeyKind, MerchantCredentials

_EMPTY_BODIES = {b"", b"{}", b"[]", b"null"}
_JSON_TYPES = ("application/json", "text/json")


@dataclass(frozen=True, slots=True)
class SignedRequest:
    credentials: MerchantCredentials
    key_kind: KeyKind
    body: bytes
    data: dict[str, Any]

    @property
    def merchant_id(self) -> uuid.UUID:
        return self.credentials.merchant_id


def sign(body: bytes, key: str) -> str:
    return hashlib.md5(base64.b64encode(body) + key.encode(), usedforsecurity=False).hexdigest()


def signature_matches(body: bytes, key: str, given: str) -> bool:
    return hmac.compare_digest(sign(body, key), given.strip().lower())


async def authenticate(
    request: Request, context: Context, key: KeyKind, *, read_only: bool
) -> SignedRequest:
    merchant_header = request.headers.get("merchant")
    sign_header = request.headers.get("sign")
    if not merchant_header or not sign_header:
        raise CryptomusError("The merchant and sign headers are required", 401)
    try:
        merchant_id = uuid.UUID(merchant_header.strip())
    except ValueError:
        raise CryptomusError("Merchant not found", 401) from None
    credentials = await context.credentials.get(merchant_id)
    if credentials is None:
        raise CryptomusError("Merchant not found", 401)
    if not credentials.api_enabled:
        # A dashboard project whose API access the operator has not granted yet.
        raise CryptomusError("You are forbidden", 403)

    body = await read_body(request, context.settings.max_body_bytes)
    kinds = [key]
    if read_only and context.settings.cryptomus_lenient_keys:
        kinds.append(KeyKind.PAYOUT if key is KeyKind.PAYMENT else KeyKind.PAYMENT)
    used = next(
        (kind for kind in kinds if signature_matches(body, credentials.key(kind), sign_header)),
        None,
    )
    if used is None:
        raise CryptomusError("Invalid Sign.", 401)
    return SignedRequest(credentials, used, body, parse_body(request, body))


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise CryptomusError(f"The request body is larger than {limit} bytes", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise CryptomusError(f"The request body is larger than {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(request: Request, body: bytes) -> dict[str, Any]:
    """The parameters of a verified body; numbers become Decimal straight from their text."""
    stripped = body.strip()
    if stripped in _EMPTY_BODIES:
        return {}
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type and not (content_type in _JSON_TYPES or content_type.endswith("+json")):
        raise CryptomusError("The request body must be JSON (Content-Type: application/json)", 415)
    try:
        if _too_deep(stripped):
            raise ValueError("nested too deep")
        data = json.loads(
            stripped.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CryptomusError("The request body is not valid JSON", 422) from None
    if not isinstance(data, dict):
        raise CryptomusError("The request body must be a JSON object", 422)
    return data


#: Deeper JSON than any request of the API needs. Checked before parsing, because the
#: parser's own guard is the interpreter's recursion limit, which libraries raise (py_ecc,
#: loaded with web3, sets 100,000): deep enough nesting would then exhaust the C stack.
MAX_JSON_DEPTH = 32


def _too_deep(body: bytes) -> bool:
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return False  # every ordinary request
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")
