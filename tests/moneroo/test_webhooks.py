"""Moneroo webhooks end to end: a merchant's endpoints, one delivery per enabled endpoint
of the payment's environment, bodies a receiver verifies (raw or re-serialised), and
Moneroo's delivery contract: only HTTP 200 within 3 s, then 3 retries 10 minutes apart."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from paydesk.checkout import webhook_endpoints
from paydesk.checkout.webhook_endpoints import (
    MAX_PER_ENVIRONMENT,
    EndpointError,
    MonerooWebhookEndpoint,
    TooManyEndpoints,
    UnknownEndpoint,
)
from paydesk.db import utcnow
from paydesk.merchants.moneroo_keys import MonerooKeys
from paydesk.merchants.service import create_merchant
from paydesk.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEvent
from paydesk.webhooks.sender import build_sender
from paydesk.webhooks.worker import deliver_due
from tests.moneroo.test_payments_api import MonerooClient, keys_of
from tests.receiver import Received, Receiver


@pytest.fixture
def settings_overrides():
    return {"callback_allowlist": ["127.0.0.0/8"]}


@pytest.fixture
async def sender(context):
    sender = build_sender(context.settings)
    yield sender
    await sender.close()


@pytest.fixture
async def keys(context, merchant) -> MonerooKeys:
    return await keys_of(context, merchant.merchant_id)


@pytest.fixture
def sandbox(http, keys) -> MonerooClient:
    return MonerooClient(http, keys.sandbox_secret_key)


class Clock:
    """The worker's idea of now, moved by hand."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


async def add(context, merchant_id, url, **options) -> webhook_endpoints.Endpoint:
    async with context.db.transaction() as session:
        return await webhook_endpoints.add(session, context.vault, merchant_id, url, **options)


async def set_enabled(context, endpoint_id, enabled: bool) -> None:
    async with context.db.transaction() as session:
        await webhook_endpoints.set_enabled(session, context.vault, endpoint_id, enabled)


async def initialize(sandbox: MonerooClient, **fields) -> str:
    created = await sandbox.initialize(**fields)
    assert created.status_code == 201, created.text
    return created.json()["data"]["id"]


async def cancel(context, payment_id: str) -> None:
    async with context.db.transaction() as session:
        await context.checkout.cancel(session, payment_id)


async def deliveries(context) -> list[WebhookDelivery]:
    async with context.db.reader() as session:
        return list(await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def expected_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def js_reserialised(body: bytes) -> bytes:
    return json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode()


def events_of(received: list[Received]) -> list[str]:
    return [json.loads(r.body)["event"] for r in received]


# --------------------------------------------------------------------------- endpoints
async def test_endpoints_are_added_listed_switched_and_deleted(context, merchant, keys):
    shop = merchant.merchant_id
    mine = await add(context, shop, "https://shop.example/moneroo", secret="whsec_demo")
    default = await add(context, shop, "https://shop.example/live", environment="live")
    assert (mine.environment, mine.enabled, mine.secret) == ("sandbox", True, "whsec_demo")
    assert default.environment == "live" and default.secret == keys.webhook_secret
    async with context.db.reader() as session:
        stored = await session.get_one(MonerooWebhookEndpoint, mine.id)
        assert "whsec_demo" not in stored.secret_encrypted  # encrypted at rest
        listed = await webhook_endpoints.list_endpoints(session, context.vault, shop)
        assert [e.id for e in listed] == [mine.id, default.id]
        live = await webhook_endpoints.list_endpoints(session, context.vault, shop, "live")
        assert [e.id for e in live] == [default.id]

    await set_enabled(context, mine.id, False)
    async with context.db.reader() as session:
        assert await webhook_endpoints.receiving(session, shop, "sandbox") == []
        assert await webhook_endpoints.receiving(session, shop, "live") == [
            (default.id, "https://shop.example/live")
        ]
    await set_enabled(context, mine.id, True)

    async with context.db.transaction() as session:
        other = await create_merchant(session, context.vault, name="Other", email="o@x.test")
    async with context.db.transaction() as session:
        with pytest.raises(UnknownEndpoint):  # scoped to its merchant
            await webhook_endpoints.delete(session, mine.id, merchant_id=other.merchant_id)
    async with context.db.transaction() as session:
        assert await webhook_endpoints.delete(session, mine.id) == 0
    async with context.db.transaction() as session:
        with pytest.raises(UnknownEndpoint):
            await webhook_endpoints.delete(session, mine.id)
        with pytest.raises(UnknownEndpoint):
            await webhook_endpoints.set_enabled(session, context.vault, uuid.uuid4(), True)
    async with context.db.reader() as session:
        listed = await webhook_endpoints.list_endpoints(session, context.vault, shop)
    assert [e.id for e in listed] == [default.id]


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("ftp://shop.example/hook", {}),
        ("shop.example/hook", {}),
        ("https://user:pw@shop.example/hook", {}),
        ("https://shop.example/" + "x" * 255, {}),
        ("https://shop.example/hook", {"environment": "production"}),
        ("https://shop.example/hook", {"secret": "  "}),
        ("https://shop.example/hook", {"secret": "s" * 256}),
    ],
)
async def test_endpoints_refuse_what_cannot_work(context, merchant, url, options):
    with pytest.raises(EndpointError):
        await add(context, merchant.merchant_id, url, **options)


async def test_at_most_15_endpoints_per_environment(context, merchant):
    shop = merchant.merchant_id
    added = [
        await add(context, shop, f"https://shop.example/hook/{n}", secret=f"s{n}")
        for n in range(MAX_PER_ENVIRONMENT)
    ]
    with pytest.raises(TooManyEndpoints):
        await add(context, shop, "https://shop.example/hook/16")
    await set_enabled(context, added[0].id, False)  # disabled ones count too
    with pytest.raises(TooManyEndpoints):
        await add(context, shop, "https://shop.example/hook/16")
    await add(context, shop, "https://shop.example/live", environment="live")  # its own 15
    async with context.db.transaction() as session:
        other = await create_merchant(session, context.vault, name="Other", email="o@x.test")
    await add(context, other.merchant_id, "https://other.example/hook")  # per merchant
    async with context.db.transaction() as session:
        await webhook_endpoints.delete(session, added[3].id)
    await add(context, shop, "https://shop.example/hook/16")


# --------------------------------------------------------------------------- fan-out
async def test_initialize_notifies_every_enabled_sandbox_endpoint(
    context, merchant, keys, sandbox, receiver, sender
):
    shop = merchant.merchant_id
    mine = await add(context, shop, f"{receiver.url}?to=a", secret="whsec_demo")
    default = await add(context, shop, f"{receiver.url}?to=b")
    await add(context, shop, f"{receiver.url}?to=c", secret="off", enabled=False)
    await add(context, shop, f"{receiver.url}?to=d", secret="live", environment="live")

    payment_id = await initialize(
        sandbox, description="Commande n°981 / café", metadata={"order_id": "981"}
    )
    queued = await deliveries(context)
    assert [d.endpoint_id for d in queued] == [mine.id, default.id]
    assert {d.url for d in queued} == {f"{receiver.url}?to=a", f"{receiver.url}?to=b"}
    async with context.db.reader() as session:
        [event] = await session.scalars(select(WebhookEvent))
    assert (event.topic, event.url) == ("checkout.payment.initiated", None)

    assert await deliver_due(context, sender) == 2
    received = {r.path: r for r in receiver.received}
    assert set(received) == {"/ipn?to=a", "/ipn?to=b"}
    for path, secret in (("/ipn?to=a", "whsec_demo"), ("/ipn?to=b", keys.webhook_secret)):
        got = received[path]
        assert got.headers["content-type"] == "application/json"
        assert hmac.compare_digest(
            got.headers["x-moneroo-signature"], expected_signature(secret, got.body)
        )
        assert got.body == js_reserialised(got.body)  # what JS receivers sign
        body = json.loads(got.body)
        assert body["event"] == "payment.initiated"
        data = body["data"]
        assert (data["id"], data["status"], data["environment"]) == (
            payment_id, "initiated", "sandbox"
        )  # fmt: skip
        assert b'"amount":100,' in got.body and data["currency"] == "USD"
        assert data["metadata"] == {"order_id": "981"} and data["is_processed"] is False
        assert data["description"] == "Commande n°981 / café"
        assert "Commande n°981 / café".encode() in got.body  # raw UTF-8, no \/
        customer = data["customer"]
        assert (customer["first_name"], customer["firstName"]) == ("John", "John")
        assert (customer["last_name"], customer["lastName"]) == ("Doe", "Doe")
        assert customer["email"] == "john@example.com"
    assert received["/ipn?to=a"].body == received["/ipn?to=b"].body  # one event, two secrets
    assert [d.status for d in await deliveries(context)] == ["delivered", "delivered"]


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
async def test_a_node_receiver_verifies_the_re_serialised_body(
    context, merchant, sandbox, receiver, sender
):
    """Moneroo's documented Node sample: HMAC over `JSON.stringify(req.body)`."""
    await add(context, merchant.merchant_id, receiver.url, secret="whsec_demo")
    await initialize(
        sandbox,
        amount="10.25",
        description='Café / "quotes" \\ 😀',
        metadata={"order_id": "981", "2": "index-like keys first", "note": "a/b"},
    )
    await deliver_due(context, sender)
    [got] = receiver.received
    script = (
        "const crypto = require('crypto');"
        "let raw = '';"
        "process.stdin.on('data', c => raw += c);"
        "process.stdin.on('end', () => {"
        "  const body = JSON.parse(raw);"
        "  const mac = crypto.createHmac('sha256', 'whsec_demo');"
        "  process.stdout.write(JSON.stringify({"
        "    sig: mac.update(JSON.stringify(body)).digest('hex'),"
        "    same: JSON.stringify(body) === raw}));"
        "});"
    )
    done = subprocess.run(
        ["node", "-e", script], input=got.body, capture_output=True, timeout=30, check=True
    )
    verdict = json.loads(done.stdout)
    assert verdict == {"sig": got.headers["x-moneroo-signature"], "same": True}
    assert b'"amount":10.25,' in got.body


async def test_live_payments_go_to_live_endpoints_only(context, merchant, keys, http, receiver):
    await add(context, merchant.merchant_id, f"{receiver.url}?to=sandbox", secret="s")
    live_one = await add(
        context, merchant.merchant_id, f"{receiver.url}?to=live", environment="live"
    )
    await initialize(MonerooClient(http, keys.live_secret_key))
    assert [d.endpoint_id for d in await deliveries(context)] == [live_one.id]


async def test_no_endpoint_no_delivery(context, merchant, sandbox):
    await initialize(sandbox)
    assert await deliveries(context) == []


# --------------------------------------------------------------------------- policy
async def test_a_201_is_a_failure_retried_every_10_minutes_then_dead(
    context, merchant, sandbox, receiver, sender
):
    await add(context, merchant.merchant_id, receiver.url, secret="whsec_demo")
    await initialize(sandbox)
    receiver.answers = [201] * 5
    clock = Clock()
    assert await deliver_due(context, sender, clock=clock) == 1
    for attempt in (2, 3, 4):
        clock.advance(timedelta(minutes=10) - timedelta(seconds=1))
        assert await deliver_due(context, sender, clock=clock) == 0, attempt
        clock.advance(timedelta(seconds=1))
        assert await deliver_due(context, sender, clock=clock) == 1, attempt
    clock.advance(timedelta(hours=1))
    assert await deliver_due(context, sender, clock=clock) == 0  # dead: no fifth attempt
    [delivery] = await deliveries(context)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("dead", 4, "HTTP 201")
    async with context.db.reader() as session:
        attempts = list(await session.scalars(select(WebhookAttempt)))
    assert [a.status_code for a in attempts] == [201] * 4
    # Byte-identical retries, with the same signature.
    assert len({r.body for r in receiver.received}) == 1
    assert len({r.headers["x-moneroo-signature"] for r in receiver.received}) == 1
    assert len(receiver.received) == 4


async def test_only_200_counts(context, merchant, sandbox, receiver, sender):
    await add(context, merchant.merchant_id, receiver.url, secret="s")
    await initialize(sandbox)
    receiver.answers = [204, 302, 200]
    clock = Clock()
    for _ in range(3):
        assert await deliver_due(context, sender, clock=clock) == 1
        clock.advance(timedelta(minutes=10))
    [delivery] = await deliveries(context)
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert [r.path for r in receiver.received] == ["/ipn"] * 3  # the 302 was not followed


async def test_a_slow_receiver_fails_after_3_seconds(context, merchant, sandbox, receiver, sender):
    assert context.settings.webhook_timeout_seconds > 3  # the dialect's limit applies
    await add(context, merchant.merchant_id, receiver.url, secret="s")
    await initialize(sandbox)
    receiver.delay = 3.5
    clock = Clock()
    assert await deliver_due(context, sender, clock=clock) == 1
    [delivery] = await deliveries(context)
    assert delivery.status == "pending" and delivery.last_error.startswith("Timeout")
    async with context.db.reader() as session:
        [attempt] = await session.scalars(select(WebhookAttempt))
    assert attempt.status_code is None and 2900 <= attempt.latency_ms < 3500
    receiver.delay = 0
    clock.advance(timedelta(minutes=10))
    assert await deliver_due(context, sender, clock=clock) == 1
    assert (await deliveries(context))[0].status == "delivered"


async def test_a_failing_endpoint_does_not_hold_back_the_others(
    context, merchant, sandbox, receiver, sender
):
    other = Receiver()
    other.start()
    try:
        await add(context, merchant.merchant_id, receiver.url, secret="a")
        await add(context, merchant.merchant_id, other.url, secret="b")
        payment_id = await initialize(sandbox)
        await cancel(context, payment_id)
        receiver.answers = [500]
        clock = Clock()
        assert await deliver_due(context, sender, clock=clock) == 2  # both initiated
        assert await deliver_due(context, sender, clock=clock) == 1  # the other's cancelled
        assert await deliver_due(context, sender, clock=clock) == 0  # waits for its initiated
        clock.advance(timedelta(minutes=10))
        assert await deliver_due(context, sender, clock=clock) == 1
        assert await deliver_due(context, sender, clock=clock) == 1
        assert events_of(other.received) == ["payment.initiated", "payment.cancelled"]
        assert events_of(receiver.received) == [
            "payment.initiated", "payment.initiated", "payment.cancelled"
        ]  # fmt: skip
        assert json.loads(other.received[1].body)["data"]["status"] == "cancelled"
    finally:
        other.stop()


async def test_disabled_and_deleted_endpoints(context, merchant, sandbox, receiver, sender):
    endpoint = await add(context, merchant.merchant_id, receiver.url, secret="s")
    payment_id = await initialize(sandbox)
    await set_enabled(context, endpoint.id, False)
    await initialize(sandbox)  # while disabled: nothing queued for it
    assert len(await deliveries(context)) == 1
    clock = Clock()
    assert await deliver_due(context, sender, clock=clock) == 1
    [delivery] = await deliveries(context)
    assert delivery.status == "pending" and "disabled or deleted" in delivery.last_error
    assert receiver.received == []  # nothing is sent to a disabled endpoint
    await set_enabled(context, endpoint.id, True)
    clock.advance(timedelta(minutes=10))
    assert await deliver_due(context, sender, clock=clock) == 1
    assert events_of(receiver.received) == ["payment.initiated"]

    await cancel(context, payment_id)
    async with context.db.transaction() as session:
        assert await webhook_endpoints.delete(session, endpoint.id) == 1
    assert await deliver_due(context, sender, clock=clock) == 0
    cancelled = (await deliveries(context))[-1]
    assert (cancelled.status, cancelled.last_error) == ("dead", "webhook endpoint deleted")
