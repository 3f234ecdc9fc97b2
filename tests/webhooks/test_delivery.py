"""Delivery to a real receiver on 127.0.0.1: signed, ordered, retried, logged."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from pyCryptomusAPI.webhooks import process_payment_webhook
from sqlalchemy import select, update

from paydesk.db import utcnow
from paydesk.deposits.service import ObservedTransfer
from paydesk.invoices.models import Invoice
from paydesk.merchants.service import webhook_secrets
from paydesk.webhooks import signing
from paydesk.webhooks.models import WebhookAttempt, WebhookDelivery
from paydesk.webhooks.sender import build_sender
from paydesk.webhooks.service import MAX_ATTEMPTS, SCHEDULE
from paydesk.webhooks.worker import deliver_due


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
async def sender(context):
    sender = build_sender(context.settings)
    yield sender
    await sender.close()


async def usdt_invoice(api, receiver, order_id="o1", **extra):
    return await api.result(
        "/v1/payment",
        {"amount": "100", "currency": "USDT", "network": "devnet", "order_id": order_id,
         "url_callback": receiver.url, **extra},
    )  # fmt: skip


async def pay(context, invoice, amount, txid):
    async with context.db.transaction() as session:
        return await context.deposits.credit(
            session,
            ObservedTransfer(
                "devnet",
                txid,
                0,
                invoice["address"],
                "USDT",
                Decimal(amount),
                from_address="pdev1payer",
            ),
        )


async def deliveries(context):
    async with context.db.reader() as session:
        return list(await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


async def test_paid_invoice_webhook_verifies_with_a_real_client(api, context, receiver, sender):
    invoice = await usdt_invoice(api, receiver, additional_data="user/42 Привет")
    await pay(context, invoice, "100", "ab" * 32)
    assert await deliver_due(context, sender) == 1
    [got] = receiver.received
    assert got.path == "/ipn"
    # A third-party client's own verifier accepts it.
    verified = process_payment_webhook(got.body, api.merchant.payment_key)
    assert (verified.status, verified.order_id, verified.is_final) == ("paid", "o1", True)
    payload = json.loads(got.body)
    assert list(payload)[:4] == ["type", "uuid", "order_id", "amount"]
    assert list(payload)[-2:] == ["txid", "sign"]
    assert payload["payment_amount"] == "100.00000000" and payload["txid"] == "ab" * 32
    assert payload["payment_amount_usd"] == "100.00"
    assert b"user\\/42 \xd0\x9f" in got.body  # PHP escaping: \/ and raw UTF-8
    # Raw-body receivers: the signed bytes are the body minus the trailing sign member.
    unsigned = got.body[: got.body.rindex(b',"sign"')] + b"}"
    from paydesk.api.cryptomus.auth import sign

    assert sign(unsigned, api.merchant.payment_key) == payload["sign"]
    # Standard Webhooks headers with the merchant's secret.
    async with context.db.reader() as session:
        [secret] = await webhook_secrets(session, context.vault, api.merchant.merchant_id)
    stamp = int(got.headers["webhook-timestamp"])
    assert signing.verify(secret, got.headers["webhook-id"], stamp, got.body,
                          got.headers["webhook-signature"])  # fmt: skip
    [delivery] = await deliveries(context)
    assert (delivery.status, delivery.attempts) == ("delivered", 1)


async def test_statuses_arrive_in_order_even_when_the_first_fails(api, context, receiver, sender):
    invoice = await usdt_invoice(api, receiver)
    await pay(context, invoice, "40", "01" * 32)
    await pay(context, invoice, "60", "02" * 32)
    receiver.answers = [500]
    clock = Clock()
    assert await deliver_due(context, sender, clock=clock) == 1  # the later one waits
    assert [json.loads(r.body)["status"] for r in receiver.received] == ["wrong_amount_waiting"]
    clock.advance(timedelta(minutes=1))
    assert await deliver_due(context, sender, clock=clock) == 1
    assert await deliver_due(context, sender, clock=clock) == 1
    statuses = [json.loads(r.body)["status"] for r in receiver.received]
    assert statuses == ["wrong_amount_waiting", "wrong_amount_waiting", "paid"]
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert ids[0] == ids[1] != ids[2]  # the event id is stable across retries


async def test_retries_follow_the_schedule_then_dead_letter(api, context, receiver, sender):
    invoice = await usdt_invoice(api, receiver)
    await pay(context, invoice, "100", "03" * 32)
    receiver.answers = [503] * MAX_ATTEMPTS
    clock = Clock()
    for attempt, wait in enumerate([timedelta(0), *SCHEDULE], start=1):
        clock.advance(wait * 0.89 if wait else wait)
        assert await deliver_due(context, sender, clock=clock) == 0 or wait == timedelta(0)
        clock.advance(wait * 0.22)
        if wait:
            assert await deliver_due(context, sender, clock=clock) == 1, attempt
    [delivery] = await deliveries(context)
    assert (delivery.status, delivery.attempts) == ("dead", MAX_ATTEMPTS)
    assert sum(SCHEDULE, timedelta()) * 0.9 > timedelta(days=3)  # even with jitter
    async with context.db.reader() as session:
        attempts = list(await session.scalars(select(WebhookAttempt)))
    assert len(attempts) == MAX_ATTEMPTS
    assert {a.status_code for a in attempts} == {503}
    assert attempts[0].response_head == "receiver says no" and attempts[0].latency_ms >= 0


async def test_receiver_down_then_up(api, context, receiver, sender):
    invoice = await usdt_invoice(api, receiver)
    await pay(context, invoice, "100", "04" * 32)
    receiver.stop()
    clock = Clock()
    assert await deliver_due(context, sender, clock=clock) == 1
    [delivery] = await deliveries(context)
    assert delivery.status == "pending" and "Connect" in delivery.last_error
    receiver.start()  # same port
    clock.advance(timedelta(seconds=40))
    assert await deliver_due(context, sender, clock=clock) == 1
    assert len(receiver.received) == 1
    assert (await deliveries(context))[0].status == "delivered"


async def test_redirects_are_not_followed(api, context, receiver, sender):
    invoice = await usdt_invoice(api, receiver)
    await pay(context, invoice, "100", "05" * 32)
    receiver.answers = [302]
    await deliver_due(context, sender)
    assert [r.path for r in receiver.received] == ["/ipn"]
    assert (await deliveries(context))[0].last_error == "HTTP 302"


async def test_expiry_is_announced_once(api, context, receiver, sender):
    invoice = await usdt_invoice(api, receiver, lifetime=300)
    async with context.db.transaction() as session:
        await session.execute(
            update(Invoice).where(Invoice.order_id == "o1")
            .values(expired_at=utcnow() - timedelta(seconds=1))
        )  # fmt: skip
    for _ in range(3):  # readers and the sweep all see it due
        await api.result("/v1/payment/info", {"uuid": invoice["uuid"]})
    async with context.db.transaction() as session:
        assert await context.invoices.expire_due(session, utcnow()) == 0
    await deliver_due(context, sender)
    assert [json.loads(r.body)["status"] for r in receiver.received] == ["cancel"]


async def test_no_url_no_delivery(api, context, sender):
    invoice = await api.result(
        "/v1/payment", {"amount": "100", "currency": "USDT", "network": "devnet", "order_id": "x"}
    )
    await pay(context, invoice, "100", "06" * 32)
    assert await deliveries(context) == []


async def test_an_outcome_after_the_lease_was_lost_is_not_recorded(api, context, receiver):
    """A worker too slow to finish within its lease must not overwrite the delivery that
    another worker has claimed since."""
    from paydesk.webhooks.sender import Outcome
    from paydesk.webhooks.service import claim_due, finish

    invoice = await usdt_invoice(api, receiver)
    await pay(context, invoice, "100", "07" * 32)
    clock = Clock()
    async with context.db.transaction() as session:
        [slow] = await claim_due(session, clock(), 10, timedelta(seconds=5))
    clock.advance(timedelta(seconds=6))  # the lease ran out
    async with context.db.transaction() as session:
        [fast] = await claim_due(session, clock(), 10, timedelta(seconds=5))
    assert fast.delivery_id == slow.delivery_id and fast.token != slow.token
    async with context.db.transaction() as session:
        assert await finish(session, [(slow, Outcome(500, 1, None, "late"))], clock()) == {}
        recorded = await finish(session, [(fast, Outcome(200, 1, None, "OK"))], clock())
    assert recorded == {fast.delivery_id: "delivered"}
    [delivery] = await deliveries(context)
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
