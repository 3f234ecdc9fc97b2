"""Standard Webhooks signatures (webhook-id, webhook-timestamp, webhook-signature), sent
beside each dialect's own signature so a receiver can also reject replays."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def signature(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of id.timestamp.body>` for each secret, space-separated
    (a receiver that knows either the new or the previous secret verifies)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets
    )


def headers(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers; none for a merchant without a secret (created before they were)."""
    if not secrets:
        return {}
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secrets, message_id, timestamp, body),
    }


def verify(secret: str, message_id: str, timestamp: int, body: bytes, header: str) -> bool:
    expected = signature([secret], message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in header.split())
