"""Moneroo webhook bodies and signatures without a database: the spec's test vectors, the
`JSON.stringify` round trip receivers rely on, and the per-dialect delivery policies."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from paydesk.api.moneroo import webhooks as moneroo
from paydesk.api.numbers import json_number
from paydesk.webhooks.policy import CRYPTOMUS, MONEROO, policy_for
from paydesk.webhooks.sender import Outcome

#: Spec moneroo-api 8.3: (secret, exact body, X-Moneroo-Signature).
VECTORS = [
    (
        "test_secret",
        b'{"event":"payment.success","data":{"id":"123"}}',
        "27322273a86c374b870b5ac08d1ee3ca7a2958aaae915d36e96d14b8cf9900a9",
    ),
    (
        "whsec_demo",
        '{"event":"payment.success","data":{"id":"py_3k9wq2m7xv1c","status":"success",'
        '"amount":5000,"currency":"XOF","description":"Commande n°981 / café",'
        '"metadata":{"order_id":"981"}}}'.encode(),
        "ab071f6cfabdc208ef2ff7bd76eb33b5d00dbf96acb706321b2fba961b2d3460",
    ),
]


def js_roundtrip(body: bytes) -> bytes:
    """What a Node receiver signs: `JSON.stringify(JSON.parse(body))`, modelled in Python
    (ints stay ints; the bodies here carry no fractional amounts)."""
    return json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize(("secret", "body", "expected"), VECTORS)
def test_signature_matches_the_spec_vectors(secret, body, expected):
    assert moneroo.signature(secret, body) == expected


def test_the_second_vector_body_is_what_paydesk_writes():
    secret, body, expected = VECTORS[1]
    written = moneroo.js_json(
        {
            "event": "payment.success",
            "data": {
                "id": "py_3k9wq2m7xv1c",
                "status": "success",
                "amount": json_number(Decimal("5000.00")),
                "currency": "XOF",
                "description": "Commande n°981 / café",
                "metadata": {"order_id": "981"},
            },
        }
    )
    assert written == body
    assert moneroo.signature(secret, written) == expected
    assert js_roundtrip(written) == written


def recorded_event(amount: str = "5000", **data: object) -> dict[str, object]:
    """An event as the checkout records it (paydesk.checkout.events)."""
    snapshot = {
        "id": "py_3k9wq2m7xv1c",
        "status": "success",
        "amount": amount,
        "currency": "XOF",
        "description": "Order #981 / café",
        "environment": "sandbox",
        "metadata": {"order_id": "981"},
        "is_processed": False,
        "customer": {"id": "c8h2k4m6p0r2", "email": "awa@example.com", "first_name": "Awa",
                     "last_name": "Diallo", "phone": "22997000001"},
        "method": "mtn_bj",
        "created_at": "2026-11-23T10:00:00.000000Z",
    }  # fmt: skip
    snapshot.update(data)
    return {"event": "payment.success", "environment": "sandbox", "data": snapshot}


def test_body_is_the_spec_superset_in_order():
    body = moneroo.body(recorded_event())
    parsed = json.loads(body)
    assert list(parsed) == ["event", "data"] and parsed["event"] == "payment.success"
    assert list(parsed["data"]) == [
        "id", "status", "amount", "currency", "description", "environment", "metadata",
        "is_processed", "customer", "method", "created_at",
    ]  # fmt: skip
    assert parsed["data"]["customer"] == {
        "id": "c8h2k4m6p0r2", "email": "awa@example.com", "first_name": "Awa",
        "last_name": "Diallo", "firstName": "Awa", "lastName": "Diallo", "phone": "22997000001",
    }  # fmt: skip
    assert b'"amount":5000,' in body and b'"currency":"XOF"' in body
    assert "Order #981 / café".encode() in body  # raw UTF-8, `/` unescaped
    assert body == js_roundtrip(body)
    assert body == moneroo.body(recorded_event())  # the same bytes on every retry


@pytest.mark.parametrize(
    ("amount", "written"),
    [("100", b"100"), ("100.00", b"100"), ("10.25", b"10.25"), ("0.10", b"0.1"),
     ("15000.000000", b"15000"), ("123456789012.5", b"123456789012.5")],
)  # fmt: skip
def test_amounts_are_exact_json_numbers(amount, written):
    body = moneroo.body(recorded_event(amount))
    assert b'"amount":' + written + b"," in body
    assert json.loads(body, parse_float=Decimal)["data"]["amount"] == Decimal(amount)


def test_bodies_survive_a_javascript_round_trip():
    """Keys JavaScript orders first (array indices), escapes, a lone surrogate: the bytes
    are what `JSON.stringify(JSON.parse(body))` gives back."""
    event = recorded_event(
        description='quote " backslash \\ tab \t newline \n nul \x00 emoji 😀 \u2028',
        metadata={"b": "1", "10": "x", "2": "y", "01": "z", "a": "w"},
    )
    body = moneroo.body(event)
    metadata = json.loads(body)["data"]["metadata"]
    assert list(metadata) == ["2", "10", "b", "01", "a"]  # as a JavaScript object keeps them
    assert b"\\u0000" in body and "😀".encode() in body and "\u2028".encode() in body
    assert body == js_roundtrip(body)
    lone = moneroo.body(recorded_event(description="half \ud83d"))
    assert b'"half \\ud83d"' in lone  # JSON.stringify escapes it; UTF-8 cannot carry it


def test_signed_gives_the_header_for_the_exact_bytes():
    body, headers = moneroo.signed(recorded_event(), "whsec_demo")
    assert headers == {"X-Moneroo-Signature": moneroo.signature("whsec_demo", body)}
    assert len(headers["X-Moneroo-Signature"]) == 64


def outcome(status: int | None) -> Outcome:
    return Outcome(status, 5, None if status else "Timeout", None)


def test_policies_per_dialect():
    assert policy_for("checkout.payment.success") is MONEROO
    assert policy_for("invoice.status") is CRYPTOMUS
    assert policy_for("payout.status") is CRYPTOMUS
    assert [MONEROO.delivered(outcome(s)) for s in (200, 201, 204, 301, 500, None)] == [
        True, False, False, False, False, False,
    ]  # fmt: skip
    assert [CRYPTOMUS.delivered(outcome(s)) for s in (200, 201, 204, 301, None)] == [
        True, True, True, False, False,
    ]  # fmt: skip
    assert MONEROO.timeout == 3.0 and MONEROO.max_attempts == 4
    waits = [MONEROO.retry_wait(n) for n in range(1, 5)]
    assert waits == [timedelta(minutes=10)] * 3 + [None]
    assert CRYPTOMUS.max_attempts == 18 and CRYPTOMUS.retry_wait(18) is None
    assert timedelta(seconds=27) <= CRYPTOMUS.retry_wait(1) <= timedelta(seconds=33)
