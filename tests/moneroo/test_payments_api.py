"""The Moneroo payment endpoints as clients call them: Bearer keys choosing the mode, the
envelope, initialize's rules, verify and retrieve's payment object, mark as processed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from paydesk.checkout.models import CheckoutPayment
from paydesk.merchants.models import Merchant
from paydesk.merchants.moneroo_keys import MonerooKeys, ensure_keys
from paydesk.merchants.service import create_merchant

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@dataclass
class MonerooClient:
    """Calls as the SDKs make them: JSON with Accept and Content-Type on every request."""

    http: httpx.AsyncClient
    key: str

    async def call(self, method: str, path: str, body: Any = None, **kwargs: Any):
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "application/json",
                   "Content-Type": "application/json"}  # fmt: skip
        content = None if body is None else json.dumps(body).encode()
        return await self.http.request(method, path, content=content, headers=headers, **kwargs)

    async def initialize(self, **fields: Any):
        return await self.call("POST", "/v1/payments/initialize", payment_body(**fields))


def payment_body(**fields: Any) -> dict[str, Any]:
    body = {
        "amount": 100,
        "currency": "USD",
        "description": "Payment for order #123",
        "customer": {"email": "john@example.com", "first_name": "John", "last_name": "Doe"},
        "return_url": "https://shop.example/thanks?order=123",
        "metadata": {"order_id": "123", "customer_id": "42"},
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


async def keys_of(context, merchant_id) -> MonerooKeys:
    async with context.db.transaction() as session:
        row = await session.get_one(Merchant, merchant_id)
        return await ensure_keys(session, context.vault, row)


@pytest.fixture
async def keys(context, merchant) -> MonerooKeys:
    return await keys_of(context, merchant.merchant_id)


@pytest.fixture
def sandbox(http, keys) -> MonerooClient:
    return MonerooClient(http, keys.sandbox_secret_key)


@pytest.fixture
def live(http, keys) -> MonerooClient:
    return MonerooClient(http, keys.live_secret_key)


def assert_envelope_ok(payload: dict[str, Any]) -> None:
    assert list(payload) == ["success", "message", "data", "errors"]
    assert payload["success"] is True and payload["errors"] is None
    assert "successfully" in payload["message"]


async def test_keys_look_like_monerooo_keys_and_pick_the_mode(keys):
    assert re.fullmatch(r"pvk_sandbox_[a-z0-9]{6}\|[0-9A-Z]{26}", keys.sandbox_secret_key)
    assert re.fullmatch(r"pvk_[a-z0-9]{6}\|[0-9A-Z]{26}", keys.live_secret_key)


async def test_initialize_then_verify_and_retrieve(sandbox):
    created = await sandbox.initialize()
    assert created.status_code == 201
    payload = created.json()
    assert_envelope_ok(payload)
    data = payload["data"]
    assert re.fullmatch(r"py_[a-z0-9]{12}", data["id"])
    assert "moneroo" in data["checkout_url"] and data["link"] == data["checkout_url"]

    verified = await sandbox.call("GET", f"/v1/payments/{data['id']}/verify")
    assert verified.status_code == 200
    assert_envelope_ok(verified.json())
    assert verified.json()["message"] == "Payment transaction fetched successfully!"
    payment = verified.json()["data"]
    assert b'"amount":100,' in verified.content  # a JSON number, in major units
    assert (payment["id"], payment["status"], payment["environment"]) == (
        data["id"], "initiated", "sandbox"
    )  # fmt: skip
    assert payment["currency"]["code"] == "USD" and payment["amount_formatted"] == "$ 100.00"
    assert payment["metadata"] == {"order_id": "123", "customer_id": "42"}
    assert payment["capture"] is None and payment["is_processed"] is False
    assert payment["return_url"] == "https://shop.example/thanks?order=123"
    assert payment["checkout_url"] == data["checkout_url"]
    customer = payment["customer"]
    assert (customer["email"], customer["first_name"], customer["zip_code"]) == (
        "john@example.com", "John", None
    )  # fmt: skip
    for moment in (payment["created_at"], payment["initiated_at"], customer["created_at"]):
        assert TIMESTAMP.match(moment)
    assert len(payment["app"]["id"]) == 26 and payment["app"]["name"] == "Shop"

    retrieved = await sandbox.call("GET", f"/v1/payments/{data['id']}", body=[])  # PHP SDKs
    assert retrieved.status_code == 200
    assert retrieved.json()["data"] == payment


async def test_the_key_decides_who_sees_a_payment(context, sandbox, live, http):
    created = (await sandbox.initialize()).json()["data"]
    path = f"/v1/payments/{created['id']}/verify"
    assert (await live.call("GET", path)).status_code == 404  # the other mode
    async with context.db.transaction() as session:
        other = await create_merchant(session, context.vault, name="Other", email="o@x.test")
    stranger = MonerooClient(http, (await keys_of(context, other.merchant_id)).sandbox_secret_key)
    missing = await stranger.call("GET", path)
    assert missing.status_code == 404
    assert missing.json() == {
        "success": False, "message": "Payment transaction not found.", "data": None,
        "errors": [{"type": "not_found", "field": None,
                    "message": "Payment transaction not found.", "hint": None}],
    }  # fmt: skip
    for headers in ({}, {"Authorization": "Bearer pvk_sandbox_nope|0000"},
                    {"Authorization": "Basic abc"}):  # fmt: skip
        refused = await http.get(path, headers=headers)
        assert refused.status_code == 401 and refused.json()["success"] is False
        assert refused.headers["content-type"] == "application/json"


async def test_amounts_as_clients_send_them(sandbox):
    for amount in ("15000.00", 15000, "15000"):
        created = await sandbox.initialize(amount=amount, currency="xof", methods=["mtn_bj"])
        assert created.status_code == 201, created.text
    fraction = await sandbox.initialize(amount="100.5", currency="XOF", methods=["mtn_bj"])
    assert fraction.status_code == 422
    assert fraction.json()["errors"][0]["field"] == "amount"
    cents = await sandbox.initialize(amount=10.25)
    assert cents.status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": ...}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": "ten"}, "amount"),
        ({"currency": ...}, "currency"),
        ({"currency": "BTC"}, "currency"),
        ({"return_url": ...}, "return_url"),
        ({"return_url": "javascript:alert(1)"}, "return_url"),
        ({"customer": ...}, "customer"),
        ({"customer": {"first_name": "A", "last_name": "B"}}, "customer.email"),
        ({"customer": {"email": "nope", "first_name": "A", "last_name": "B"}}, "customer.email"),
        ({"customer": {"email": "a@b.co", "last_name": "B"}}, "customer.first_name"),
        ({"metadata": {"nested": {"a": 1}}}, "metadata.nested"),
        ({"metadata": {f"k{n}": "v" for n in range(11)}}, "metadata"),
        ({"methods": ["mtn_bj", "teleport"]}, "methods.1"),
        ({"restrict_country_code": "BJ",
          "restricted_phone": {"number": "22997000001", "country_code": "BJ"}}, "restricted_phone"),
        ({"restricted_phone": {"country_code": "BJ"}}, "restricted_phone.number"),
        ({"description": "x" * 156}, "description"),
    ],
)  # fmt: skip
async def test_invalid_bodies_get_field_errors(sandbox, change, field):
    refused = await sandbox.initialize(**change)
    assert refused.status_code == 422, refused.text
    payload = refused.json()
    assert (payload["success"], payload["data"]) == (False, None)
    assert field in [error["field"] for error in payload["errors"]]
    assert payload["message"] == payload["errors"][0]["message"]


async def test_every_problem_is_reported_at_once(sandbox):
    refused = await sandbox.call("POST", "/v1/payments/initialize", {"methods": ["nope"]})
    fields = [error["field"] for error in refused.json()["errors"]]
    assert fields == ["currency", "amount", "return_url", "customer", "methods.0"]
    assert refused.json()["message"] == "The currency field is required."


async def test_loose_inputs_real_clients_send(sandbox):
    created = await sandbox.initialize(
        amount=5000, currency="XOF", description=None, methods=None,
        customer={"email": "Awa@Example.com", "first_name": "Awa", "last_name": "Diallo",
                  "phone": 22997000001, "country": "bj", "zip": None, "address": None},
        metadata={"order_id": 981, "paid": True, "note": None},
        restricted_phone={"number": "+229 97 00 00 01", "country_code": "229"},
        plugin_name="woocommerce",
    )  # fmt: skip
    assert created.status_code == 201, created.text
    payment = (await sandbox.call("GET", f"/v1/payments/{created.json()['data']['id']}")).json()
    data = payment["data"]
    assert data["metadata"] == {"order_id": "981", "paid": "true"}
    assert data["description"] == ""
    customer = data["customer"]
    shown = tuple(customer[k] for k in ("email", "phone", "country_code", "country"))
    assert shown == ("awa@example.com", "22997000001", "BJ", "Benin")


async def test_no_method_left_is_refused(sandbox, live):
    ghana_only = await sandbox.initialize(currency="XOF", methods=["mtn_gh"])
    assert ghana_only.status_code == 422
    assert ghana_only.json()["message"] == "No payment method available for this request."
    # The sandbox's test method is sandbox only.
    test_method = await live.initialize(methods=["moneroo_payment_demo"])
    assert test_method.status_code == 422
    assert (await live.initialize()).status_code == 201  # cards and crypto in USD


async def test_mark_as_processed_only_once_paid(context, sandbox):
    created = (await sandbox.initialize()).json()["data"]
    path = f"/v1/payments/{created['id']}/process"
    early = await sandbox.call("POST", path, [])
    assert early.status_code == 422
    async with context.db.transaction() as session:
        await session.execute(
            update(CheckoutPayment)
            .where(CheckoutPayment.public_id == created["id"])
            .values(status="success")
        )
    first = await sandbox.call("POST", path, [])
    assert first.status_code == 200
    marked = first.json()["data"]
    assert marked["is_processed"] is True and TIMESTAMP.match(marked["processed_at"])
    again = await sandbox.call("POST", path, {})
    assert again.json()["data"]["processed_at"] == marked["processed_at"]


async def test_a_customer_is_kept_per_email(sandbox):
    first = (await sandbox.initialize()).json()["data"]
    second = (
        await sandbox.initialize(
            customer={"email": "JOHN@example.com", "first_name": "Johnny", "last_name": "Doe",
                      "city": "Cotonou"}
        )
    ).json()["data"]  # fmt: skip
    one = (await sandbox.call("GET", f"/v1/payments/{first['id']}")).json()["data"]["customer"]
    two = (await sandbox.call("GET", f"/v1/payments/{second['id']}")).json()["data"]["customer"]
    assert one["id"] == two["id"] and two["first_name"] == "Johnny" and two["city"] == "Cotonou"


async def test_bad_json_is_a_400_in_the_envelope(sandbox, http, keys):
    broken = await http.post(
        "/v1/payments/initialize", content=b"{nope",
        headers={"Authorization": f"Bearer {keys.sandbox_secret_key}"},
    )  # fmt: skip
    assert broken.status_code == 400 and broken.json()["success"] is False


async def test_routes_tolerate_slashes_and_unknown_ones_answer_in_the_envelope(sandbox, http):
    created = (await sandbox.initialize()).json()["data"]
    for path in (f"/v1/payments/{created['id']}/", f"/v1//payments/{created['id']}"):
        assert (await sandbox.call("GET", path)).status_code == 200
    unknown = await sandbox.call("GET", "/v1/payments/x/refund")
    assert unknown.status_code == 404
    assert unknown.json() == {
        "success": False, "message": "The route v1/payments/x/refund could not be found.",
        "data": None, "errors": [{"type": "not_found", "field": None,
                                  "message": "The route v1/payments/x/refund could not be found.",
                                  "hint": None}],
    }  # fmt: skip
    wrong_method = await http.delete(f"/v1/payments/{created['id']}")
    assert wrong_method.status_code == 405 and wrong_method.json()["success"] is False
