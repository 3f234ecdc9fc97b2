"""`payment/resend` and the three test-webhook endpoints."""

from __future__ import annotations

import json

import pytest
from pyCryptomusAPI.webhooks import process_payment_webhook, process_payout_webhook

from paydesk.webhooks.sender import build_sender
from paydesk.webhooks.worker import deliver_due
from tests.webhooks.test_delivery import pay, usdt_invoice


@pytest.fixture
async def sender(context):
    sender = build_sender(context.settings)
    yield sender
    await sender.close()


async def test_resend_delivers_the_latest_webhook_again(api, context, receiver, sender):
    invoice = await usdt_invoice(api, receiver)
    await pay(context, invoice, "100", "aa" * 32)
    await deliver_due(context, sender)
    assert await api.result("/v1/payment/resend", {"order_id": "o1"}) == []
    await deliver_due(context, sender)
    first, again = receiver.received
    assert first.body == again.body  # the same event, rendered the same
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    assert json.loads(again.body)["status"] == "paid"
    # v2 with a txid, as one client library calls it.
    assert await api.result("/v2/payment/resend", {"txid": "aa" * 32}) == []


async def test_resend_limits_and_errors(api, context, receiver):
    unpaid = await usdt_invoice(api, receiver, order_id="unpaid")
    response = await api.post("/v1/payment/resend", {"uuid": unpaid["uuid"]})
    assert response.json() == {"state": 1, "message": "Notification not found"}
    response = await api.post("/v1/payment/resend", {"order_id": "nope"})
    assert response.json() == {"state": 1, "message": "Payment not found"}
    response = await api.post("/v1/payment/resend", {})
    assert response.json()["errors"] == {
        "uuid": ["validation.required_without"],
        "order_id": ["validation.required_without"],
        "txid": ["validation.required_without"],
    }
    paid = await usdt_invoice(api, receiver, order_id="paid")
    await pay(context, paid, "100", "bb" * 32)
    for _ in range(10):
        await api.result("/v1/payment/resend", {"order_id": "paid"})
    response = await api.post("/v1/payment/resend", {"order_id": "paid"})
    assert response.json() == {"state": 1, "message": "Too much resend"}


async def test_test_payment_webhook_made_up_and_named(api, context, receiver):
    body = {"url_callback": receiver.url, "currency": "USDT", "network": "devnet"}
    assert await api.result("/v1/test-webhook/payment", body) == []
    made_up = process_payment_webhook(receiver.received[-1].body, api.merchant.payment_key)
    assert (made_up.status, made_up.currency, made_up.network) == ("paid", "USDT", "devnet")

    invoice = await usdt_invoice(api, receiver, order_id="real")
    await api.result(
        "/v1/test-webhook/payment", {**body, "order_id": "real", "status": "wrong_amount"}
    )
    named = json.loads(receiver.received[-1].body)
    assert (named["uuid"], named["status"], named["is_final"]) == (
        invoice["uuid"], "wrong_amount", True,
    )  # fmt: skip
    assert "webhook-signature" in receiver.received[-1].headers


async def test_test_wallet_and_payout_webhooks(api, receiver):
    body = {"url_callback": receiver.url, "currency": "USDT", "network": "devnet"}
    await api.result("/v1/test-webhook/wallet", {**body, "status": "paid_over"})
    wallet = json.loads(receiver.received[-1].body)
    assert (wallet["type"], wallet["status"]) == ("wallet", "paid_over")
    assert wallet["wallet_address_uuid"]
    process_payment_webhook(receiver.received[-1].body, api.merchant.payment_key)

    response = await api.post(
        "/v1/test-webhook/payout", {**body, "status": "fail"}, key=api.merchant.payout_key
    )
    assert response.status_code == 200, response.text
    payout = process_payout_webhook(receiver.received[-1].body, api.merchant.payout_key)
    assert (payout.status, payout.is_final) == ("fail", True)
    assert "txid" not in json.loads(receiver.received[-1].body)


@pytest.mark.parametrize(
    ("path", "body", "answer"),
    [
        ("/v1/test-webhook/payment", {"currency": "BUSD", "network": "bsc"},
         {"state": 1, "message": "Payment service not found"}),
        ("/v1/test-webhook/payment", {"currency": "USDT", "network": "devnet", "order_id": "x"},
         {"state": 1, "message": "Not found payment"}),
        ("/v1/test-webhook/wallet", {"currency": "USDT", "network": "devnet", "order_id": "x"},
         {"state": 1, "message": "Not found wallet"}),
        ("/v1/test-webhook/payment", {"currency": "USDT", "network": "devnet", "status": "nope"},
         {"state": 1, "errors": {"status": ["validation.in"]}}),
    ],
)  # fmt: skip
async def test_test_webhook_errors(api, receiver, path, body, answer):
    response = await api.post(path, {"url_callback": receiver.url, **body})
    assert response.status_code == 422
    assert response.json() == answer
    assert receiver.received == []


async def test_test_webhook_to_a_private_address_is_not_sent(api, receiver, context):
    context.sender.guard.allowed = []  # as on a server without an allowlist
    body = {"url_callback": receiver.url, "currency": "USDT", "network": "devnet"}
    assert await api.result("/v1/test-webhook/payment", body) == []
    assert receiver.received == []
