"""Request authentication: raw-byte signatures, every body real clients send, which key
each endpoint takes, and the error for each way a request can be wrong."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from paydesk.merchants.models import Merchant
from tests.conftest import CryptomusClient, sign

SPEC_KEY = "test-api-key-123"

# Spec 1.4: raw body -> sign for API key "test-api-key-123".
SPEC_VECTORS = [
    (b"", "243803a7915cfddb629813ae00da7da3"),
    (b"{}", "51b63d0eaff0ac4e77cce9ddc11664b5"),
    (b"[]", "92291e44c75d822c879d2e4c87dbe774"),
    (b"null", "5dff4aba6a13c4ff3788b4ad2ded8ed8"),
    (b'{"amount":"15","currency":"USD","order_id":"1"}', "4e6fa8cfa90360003e722f2a2670eb0b"),
]


@pytest.mark.parametrize(("body", "expected"), SPEC_VECTORS)
def test_sign_matches_spec_vectors(body: bytes, expected: str) -> None:
    assert sign(body, SPEC_KEY) == expected


@pytest.fixture
async def spec_api(context, api: CryptomusClient) -> CryptomusClient:
    """The merchant with the spec's example payment key, so its vectors apply verbatim."""
    async with context.db.transaction() as session:
        await session.execute(
            update(Merchant)
            .where(Merchant.id == api.merchant.merchant_id)
            .values(payment_key_encrypted=context.vault.encrypt(SPEC_KEY))
        )
    return api


@pytest.mark.parametrize(("body", "expected"), SPEC_VECTORS[:4])
async def test_every_empty_body_form_is_accepted_with_the_spec_sign(spec_api, body, expected):
    response = await spec_api.http.post(
        "/v1/payment/services",
        content=body,
        headers={"merchant": str(spec_api.merchant.merchant_id), "sign": expected},
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == 0


async def test_spec_vector_create_invoice(spec_api):
    body, expected = SPEC_VECTORS[4]
    response = await spec_api.http.post(
        "/v1/payment",
        content=body,
        headers={
            "merchant": str(spec_api.merchant.merchant_id),
            "sign": expected,
            "content-type": "application/json",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"]["order_id"] == "1"


@pytest.mark.parametrize(
    "body",
    [
        # compact (official Python SDK)
        b'{"amount":"15","currency":"USD","order_id":"sp-1","url_callback":"https://shop.test/cb"}',
        # default json.dumps separators (pyCryptomusAPI)
        b'{"amount": "15", "currency": "USD", "order_id": "sp-1", "url_callback": "https://shop.test/cb"}',
        # PHP json_encode: escaped slashes
        b'{"amount":"15","currency":"USD","order_id":"sp-1","url_callback":"https:\\/\\/shop.test\\/cb"}',
        # Go encoding/json: <>& escaped, raw UTF-8
        b'{"amount":"15","currency":"USD","order_id":"sp-1",'
        b'"additional_data":"\\u003cb\\u003e \xc3\xa9"}',
        # pretty-printed with a trailing newline
        b'{\n  "amount": "15",\n  "currency": "USD",\n  "order_id": "sp-1"\n}\n',
    ],
    ids=["compact", "spaced", "php-slashes", "go-escapes", "pretty"],
)
async def test_signature_is_checked_over_the_raw_bytes(api: CryptomusClient, body: bytes):
    result = await api.result("/v1/payment", body=body)
    assert result["order_id"] == "sp-1"


async def test_re_encoded_body_does_not_match(api: CryptomusClient):
    """A client that signs the PHP-escaped form but sends the plain one is rejected, as
    Cryptomus rejects it (spec 14.1)."""
    sent = b'{"amount":"15","currency":"USD","order_id":"x","url_callback":"https://shop.test/cb"}'
    signed = sent.replace(b"/", b"\\/")
    response = await api.post(
        "/v1/payment", body=sent, headers={"sign": sign(signed, api.merchant.payment_key)}
    )
    assert response.status_code == 401
    assert response.json() == {"state": 1, "message": "Invalid Sign."}


async def test_header_names_are_case_insensitive_and_hex_case_is_ignored(api: CryptomusClient):
    body = b'{"amount":"15","currency":"USD","order_id":"caps"}'
    response = await api.http.post(
        "/v1/payment",
        content=body,
        headers={
            "Merchant": str(api.merchant.merchant_id),
            "Sign": sign(body, api.merchant.payment_key).upper(),
            "Content-Type": "application/json;charset=UTF-8",
        },
    )
    assert response.status_code == 200, response.text


async def test_content_type_may_be_missing(api: CryptomusClient):
    body = b'{"amount":"15","currency":"USD","order_id":"no-ct"}'
    response = await api.http.post(
        "/v1/payment",
        content=body,
        headers={
            "merchant": str(api.merchant.merchant_id),
            "sign": sign(body, api.merchant.payment_key),
        },
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "The merchant and sign headers are required"),
        ({"merchant": "MERCHANT"}, 401, "The merchant and sign headers are required"),
        ({"sign": "SIGN"}, 401, "The merchant and sign headers are required"),
        ({"merchant": "not-a-uuid", "sign": "SIGN"}, 401, "Merchant not found"),
        (
            {"merchant": "00000000-0000-4000-8000-000000000000", "sign": "SIGN"},
            401,
            "Merchant not found",
        ),
        ({"merchant": "MERCHANT", "sign": "0" * 32}, 401, "Invalid Sign."),
        ({"merchant": "MERCHANT", "sign": "short"}, 401, "Invalid Sign."),
    ],
)
async def test_authentication_failures(api: CryptomusClient, headers, status, message):
    body = b'{"amount":"15","currency":"USD","order_id":"1"}'
    real = {
        k: (
            str(api.merchant.merchant_id)
            if v == "MERCHANT"
            else sign(body, api.merchant.payment_key)
            if v == "SIGN"
            else v
        )
        for k, v in headers.items()
    }
    response = await api.http.post("/v1/payment", content=body, headers=real)
    assert response.status_code == status
    assert response.json() == {"state": 1, "message": message}


async def test_invoice_creation_takes_only_the_payment_key(api: CryptomusClient):
    response = await api.post(
        "/v1/payment",
        {"amount": "15", "currency": "USD", "order_id": "1"},
        key=api.merchant.payout_key,
    )
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid Sign."


@pytest.mark.parametrize("path", ["/v1/payment/info", "/v1/payment/list", "/v1/payment/services"])
async def test_read_only_endpoints_also_accept_the_payout_key(api: CryptomusClient, path):
    await api.result("/v1/payment", {"amount": "15", "currency": "USD", "order_id": "1"})
    body = {"order_id": "1"} if path.endswith("info") else {}
    await api.result(path, body, key=api.merchant.payout_key)


@pytest.mark.parametrize("settings_overrides", [{"cryptomus_lenient_keys": False}])
async def test_key_leniency_can_be_switched_off(api: CryptomusClient, settings_overrides):
    response = await api.post("/v1/payment/services", {}, key=api.merchant.payout_key)
    assert response.status_code == 401


async def test_other_merchants_key_is_rejected(api: CryptomusClient, context):
    from paydesk.merchants.service import create_merchant

    async with context.db.transaction() as session:
        other = await create_merchant(session, context.vault, name="Other", email="o@x.test")
    response = await api.post("/v1/payment/services", {}, key=other.payment_key)
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b'{"amount":', "application/json", 422, "The request body is not valid JSON"),
        (b"\xff\xfe{}", "application/json", 422, "The request body is not valid JSON"),
        (b'{"amount": NaN}', "application/json", 422, "The request body is not valid JSON"),
        (b"[1, 2]", "application/json", 422, "The request body must be a JSON object"),
        (b'"text"', "application/json", 422, "The request body must be a JSON object"),
        (b"42", "application/json", 422, "The request body must be a JSON object"),
        (
            b"[" * 100_00 + b"]" * 100_00,
            "application/json",
            422,
            "The request body is not valid JSON",
        ),
        (
            b"amount=15&currency=USD",
            "application/x-www-form-urlencoded",
            415,
            "The request body must be JSON (Content-Type: application/json)",
        ),
    ],
    ids=["truncated", "not-utf8", "nan", "array", "string", "number", "deep", "form"],
)
async def test_malformed_bodies_get_a_clear_error(
    api: CryptomusClient, body, content_type, status, message
):
    response = await api.post("/v1/payment", body=body, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert response.json() == {"state": 1, "message": message}


async def test_oversized_body_is_refused_before_it_is_read(api: CryptomusClient, context):
    limit = context.settings.max_body_bytes
    body = json.dumps(
        {"amount": "15", "currency": "USD", "order_id": "1", "pad": "x" * limit}
    ).encode()
    response = await api.post("/v1/payment", body=body)
    assert response.status_code == 413
    assert response.json() == {
        "state": 1,
        "message": f"The request body is larger than {limit} bytes",
    }


async def test_body_at_the_limit_is_accepted(api: CryptomusClient, context):
    limit = context.settings.max_body_bytes
    start = b'{"amount":"15","currency":"USD","order_id":"1","pad":"'
    body = start + b"x" * (limit - len(start) - 2) + b'"}'
    assert len(body) == limit
    await api.result("/v1/payment", body=body)


async def test_trailing_slash_is_the_same_endpoint(api: CryptomusClient):
    result = await api.result("/v1/payment/", {"amount": "15", "currency": "USD", "order_id": "1"})
    assert result["order_id"] == "1"


async def test_unknown_path_and_wrong_method(api: CryptomusClient):
    response = await api.post("/v1/nothing-here", {})
    assert response.status_code == 404
    assert response.json() == {"state": 1, "message": "Not found"}
    response = await api.http.get("/v1/payment")
    assert response.status_code == 405
    assert response.json()["state"] == 1


async def test_blocked_merchant_is_forbidden_to_create(api: CryptomusClient, context):
    async with context.db.transaction() as session:
        await session.execute(
            update(Merchant)
            .where(Merchant.id == api.merchant.merchant_id)
            .values(payments_blocked=True)
        )
    response = await api.post("/v1/payment", {"amount": "15", "currency": "USD", "order_id": "1"})
    assert response.status_code == 422
    assert response.json() == {"state": 1, "message": "You are forbidden"}


async def test_deep_json_is_refused_whatever_the_recursion_limit(api: CryptomusClient):
    import py_ecc  # noqa: F401  (web3's dependency raises the recursion limit to 100,000)

    body = b"[" * 20_000 + b"]" * 20_000
    response = await api.post("/v1/payment", body=body)
    assert response.json() == {"state": 1, "message": "The request body is not valid JSON"}
