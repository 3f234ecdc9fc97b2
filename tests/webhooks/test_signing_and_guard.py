"""The Cryptomus signature vector, PHP-compatible encoding, Standard Webhooks signatures,
and the SSRF guard."""

from __future__ import annotations

import json

import pytest

from paydesk.api.cryptomus.webhooks import php_json, signed_body
from paydesk.merchants.service import generate_webhook_secret
from paydesk.webhooks import signing
from paydesk.webhooks.sender import CallbackGuard, CallbackRefused, WebhookSender

SPEC_EXAMPLE = (
    '{"type":"payment","uuid":"62f88b36-a9d5-4fa6-aa26-e040c3dbf26d","order_id":"order-1",'
    '"amount":"3.00000000","payment_amount":"3.00000000","payment_amount_usd":"0.23",'
    '"merchant_amount":"2.94000000","commission":"0.06000000","is_final":true,"status":"paid",'
    '"from":"THgEWubVc8tPKXLJ4VZ5zbiiAK7AgqSeGH","wallet_address_uuid":null,"network":"tron",'
    '"currency":"TRX","payer_currency":"TRX","additional_data":"user\\/42 Привет",'
    '"convert":{"to_currency":"USDT","commission":null,"rate":"0.07700000",'
    '"amount":"0.22638000"},'
    '"txid":"6f0d9c8374db57cac0d806251473de754f361c83a03cd805f74aa9da3193486b"}'
)


def test_spec_signature_vector():
    body = signed_body(json.loads(SPEC_EXAMPLE), "test-api-key-123")
    assert body == SPEC_EXAMPLE[:-1].encode() + b',"sign":"77a841c38e959f8c23d8d69682e075eb"}'


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("a/b", b'"a\\/b"'),
        ("Привет", '"Привет"'.encode()),
        ("\u2028\u2029", b'"\\u2028\\u2029"'),
        ('q"\\', b'"q\\"\\\\"'),
        ("\n\t\x01", b'"\\n\\t\\u0001"'),
    ],
)
def test_php_json_encoding(text, encoded):
    assert php_json(text) == encoded


def test_standard_webhooks_signature_and_rotation():
    old, new = generate_webhook_secret(), generate_webhook_secret()
    header = signing.signature([new, old], "msg_1", 1700000000, b'{"a":1}')
    assert header.count("v1,") == 2
    assert signing.verify(old, "msg_1", 1700000000, b'{"a":1}', header)
    assert signing.verify(new, "msg_1", 1700000000, b'{"a":1}', header)
    assert not signing.verify(new, "msg_1", 1700000001, b'{"a":1}', header)  # replayed time
    assert not signing.verify(new, "msg_1", 1700000000, b'{"a":2}', header)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/ipn",
        "http://10.1.2.3/ipn",
        "http://192.168.0.10:8080/ipn",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/ipn",
        "http://[fe80::1]/ipn",
        "http://localhost/ipn",  # a name that resolves to loopback
        "http://100.64.0.1/ipn",
    ],
)
async def test_non_public_targets_are_refused(url):
    with pytest.raises(CallbackRefused):
        await CallbackGuard([]).resolve(url)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "http://user:pw@example.com/", "http:///x"]
)
async def test_other_schemes_and_credentials_are_refused(url):
    with pytest.raises(CallbackRefused):
        await CallbackGuard([]).resolve(url)


async def test_allowlisted_networks_pass():
    guard = CallbackGuard(["127.0.0.0/8", "10.0.0.0/8"])
    assert (await guard.resolve("http://127.0.0.1:9/x")).address == "127.0.0.1"
    assert (await guard.resolve("http://10.1.2.3/x")).address == "10.1.2.3"
    with pytest.raises(CallbackRefused):
        await guard.resolve("http://192.168.1.1/x")


async def test_a_refused_url_is_an_outcome_not_a_request():
    sender = WebhookSender(CallbackGuard([]), timeout=1, max_response_bytes=1024)
    try:
        outcome = await sender.send("http://127.0.0.1:1/ipn", b"{}", {})
    finally:
        await sender.close()
    assert not outcome.delivered and outcome.error.startswith("refused:")
