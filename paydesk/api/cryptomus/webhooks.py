"""Cryptomus webhook bodies: the field order of the spec, encoded the way PHP's
`json_encode(..., JSON_UNESCAPED_UNICODE)` encodes, signed, `sign` last.

Receivers verify either by re-encoding the parsed body without `sign` (PHP, Python, JS)
or by cutting `sign` out of the raw bytes; both match because the bytes sent are the
bytes signed plus the trailing `sign` member.
"""

from __future__ import annotations

import json
import secrets
import uuid
from decimal import Decimal
from typing import Any

from paydesk.api.cryptomus.auth import sign
from paydesk.catalogue.service import Catalogue
from paydesk.money import fixed

CRYPTO_PLACES = 8


def php_json(value: Any) -> bytes:
    """Compact JSON as PHP writes it: `/` escaped, non-ASCII raw except U+2028/U+2029."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("/", "\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode()


def signed_body(payload: dict[str, Any], key: str) -> bytes:
    """`payload` (without `sign`) and its signature appended as the last member."""
    unsigned = php_json(payload)
    signature = sign(unsigned, key)
    if unsigned == b"{}":
        return b'{"sign":"' + signature.encode() + b'"}'
    return unsigned[:-1] + b',"sign":"' + signature.encode() + b'"}'


def payment_payload(
    snapshot: dict[str, Any],
    catalogue: Catalogue,
    *,
    kind: str = "payment",
    wallet_address_uuid: str | None = None,
) -> dict[str, Any]:
    """Spec 5.2 from an invoice (or wallet payment) snapshot, in the documented order."""

    def amount(field: str, currency: str | None) -> str | None:
        value = snapshot.get(field)
        if value is None:
            return None
        places = catalogue.precision(currency) if currency else CRYPTO_PLACES
        return fixed(Decimal(value), places)

    payer = snapshot.get("payer_currency")
    payload: dict[str, Any] = {
        "type": kind,
        "uuid": snapshot["uuid"],
        "order_id": snapshot["order_id"],
        "amount": amount("amount", snapshot["currency"]),
        "payment_amount": amount("payment_amount", payer),
        "payment_amount_usd": fixed(Decimal(snapshot.get("payment_amount_usd") or 0), 2),
        "merchant_amount": amount("merchant_amount", payer),
        "commission": amount("commission", payer),
        "is_final": bool(snapshot["is_final"]),
        "status": snapshot["status"],
        "from": snapshot.get("from"),
        "wallet_address_uuid": wallet_address_uuid,
        "network": snapshot.get("network"),
        "currency": snapshot["currency"],
        "payer_currency": payer,
        "payer_amount": amount("payer_amount", payer),
        "payer_amount_exchange_rate": snapshot.get("payer_amount_exchange_rate"),
        "transfer_id": None,
        "additional_data": snapshot.get("additional_data"),
    }
    if snapshot.get("txid"):
        payload["txid"] = snapshot["txid"]
    return payload


def test_payment_snapshot(
    currency: str, network: str, status: str, *, final: bool
) -> dict[str, Any]:
    """A made-up paid invoice for `test-webhook/payment|wallet` when none is named."""
    amount = "10"
    return {
        "uuid": str(uuid.uuid4()),
        "order_id": "test_" + secrets.token_hex(8),
        "status": status,
        "is_final": final,
        "amount": amount,
        "currency": currency,
        "payer_amount": amount,
        "payer_currency": currency,
        "payer_amount_exchange_rate": "1",
        "payment_amount": amount,
        "payment_amount_usd": None,
        "merchant_amount": amount,
        "commission": "0",
        "network": network,
        "from": None,
        "txid": secrets.token_hex(32),
        "additional_data": None,
    }


def payout_payload(snapshot: dict[str, Any], catalogue: Catalogue) -> dict[str, Any]:
    """Spec 5.3 from a payout snapshot, in the documented order: `fail_reason` only on a
    failure, `txid` only once there is one."""

    def amount(field: str, currency: str) -> str:
        return fixed(Decimal(snapshot[field]), catalogue.precision(currency))

    source = snapshot.get("source_currency") or snapshot["payer_currency"]
    payload: dict[str, Any] = {
        "type": "payout",
        "uuid": snapshot["uuid"],
        "order_id": snapshot["order_id"],
        "amount": amount("amount", snapshot["currency"]),
        "merchant_amount": amount("merchant_amount", source),
        "commission": amount("commission", source),
        "is_final": bool(snapshot["is_final"]),
        "status": snapshot["status"],
    }
    if snapshot.get("fail_reason"):
        payload["fail_reason"] = snapshot["fail_reason"]
    if snapshot.get("txid") and snapshot["status"] not in ("fail", "system_fail", "cancel"):
        payload["txid"] = snapshot["txid"]
    payload.update(
        {
            "currency": snapshot["currency"],
            "network": snapshot["network"],
            "payer_currency": snapshot["payer_currency"],
            "payer_amount": amount("payer_amount", snapshot["payer_currency"]),
        }
    )
    return payload


def test_payout_snapshot(
    currency: str, network: str, status: str, *, final: bool
) -> dict[str, Any]:
    """A made-up payout for `test-webhook/payout` when none is named."""
    failed = status in ("fail", "system_fail")
    return {
        "uuid": str(uuid.uuid4()),
        "order_id": "test_" + secrets.token_hex(8),
        "status": status,
        "is_final": final,
        "fail_reason": "system_error" if failed else None,
        "amount": "10",
        "currency": currency,
        "network": network,
        "merchant_amount": "10",
        "commission": "0",
        "source_currency": currency,
        "payer_currency": currency,
        "payer_amount": "10",
        "txid": None if failed else secrets.token_hex(32),
    }
