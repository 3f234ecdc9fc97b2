"""A Moneroo "Standard" integration against a real `paydesk serve`, in real Chromium: the
shop's server initializes a payment, the customer pays on the hosted checkout with the
sandbox's test number, lands back on the shop's `return_url` with the outcome, the shop
verifies it, its webhook arrives signed, and the receipt and the merchant's notice arrive
at a real SMTP server on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.browser import (
    PHONE,
    Inbox,
    accessibility_violations,
    chromium,
    screenshot,
    shop_site,
    smtp_inbox,
)
from tests.conftest import BACKENDS, create_pg_database, drop_pg_database, free_port, worker_id
from tests.live import create_live_merchant, live_server, paydesk_env, run_cli
from tests.paypage.test_page_browser import choose_usdt_on_devnet, off_the_loop, t
from tests.receiver import Receiver

pytestmark = pytest.mark.slow

expect: Any = pytest.importorskip("playwright.sync_api").expect
WEBHOOK_SECRET = "whsec_browser_test"
SETTLE_SECONDS = 20.0


@dataclass
class Shop:
    base_url: str
    merchant: str
    secret_key: str
    inbox: Inbox
    receiver: Receiver
    shop_url: str
    visits: list[str]

    def api(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return httpx.request(
            method,
            self.base_url + "/v1" + path,
            json=body,
            headers={"Authorization": f"Bearer {self.secret_key}", "Accept": "application/json"},
            timeout=10,
        )


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    with smtp_inbox() as caught:
        yield caught


@pytest.fixture(scope="module", params=BACKENDS)
def shop(request, tmp_path_factory, postgres_available, inbox) -> Iterator[Shop]:
    backend = request.param
    handler, smtp_port = inbox
    database_url = None
    pg_name = f"paydesk_moneroo_browser_{worker_id()}"
    if backend == "postgresql":
        if not postgres_available:
            pytest.skip("PostgreSQL is not reachable")
        database_url = off_the_loop(create_pg_database, pg_name)
    env = paydesk_env(
        tmp_path_factory.mktemp(f"moneroo-{backend}"),
        database_url,
        PAYDESK_EMBEDDED_WORKER="true",
        PAYDESK_CALLBACK_ALLOWLIST="127.0.0.0/8",
        PAYDESK_DEVNET_BLOCK_SECONDS="0.5",
        PAYDESK_WATCHER_POLL_SECONDS="0.2",
        PAYDESK_PAGE_POLL_SECONDS="0.2",
        PAYDESK_SMTP_HOST="127.0.0.1",
        PAYDESK_SMTP_PORT=str(smtp_port),
        PAYDESK_SMTP_STARTTLS="false",  # the loopback test server speaks plain SMTP
    )
    if database_url:
        migrated = run_cli("migrate", env=env)
        assert migrated.returncode == 0, migrated.stderr
    merchant = create_live_merchant(env)
    keys = json.loads(run_cli("merchant", "keys", merchant.merchant, "--json", env=env).stdout)
    receiver = Receiver()
    receiver.start()
    added = run_cli("webhooks", "moneroo-add", merchant.merchant, receiver.url, "--secret",
                    WEBHOOK_SECRET, env=env)  # fmt: skip
    assert added.returncode == 0, added.stderr
    try:
        with shop_site() as (shop_url, visits), live_server(env, free_port()) as base_url:
            yield Shop(base_url, merchant.merchant, keys["moneroo_test_secret_key"], handler,
                       receiver, shop_url, visits)  # fmt: skip
    finally:
        receiver.stop()
        if database_url:
            off_the_loop(drop_pg_database, pg_name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + SETTLE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_shop_takes_a_sandbox_payment_end_to_end(shop, browser):
    order = f"order-{time.monotonic_ns()}"
    customer_email = f"{order}@customer.example"
    created = shop.api("POST", "/payments/initialize", {
        "amount": 25, "currency": "USD", "description": f"Order {order}",
        "customer": {"email": customer_email, "first_name": "Awa", "last_name": "Diallo"},
        "return_url": f"{shop.shop_url}/moneroo/return?order={order}",
        "metadata": {"order_id": order},
    })  # fmt: skip
    assert created.status_code == 201, created.text
    payment_id = created.json()["data"]["id"]
    checkout_url = created.json()["data"]["checkout_url"]
    assert "moneroo" in checkout_url

    context = browser.new_context(locale="fr-FR", **PHONE)
    page = context.new_page()
    page.goto(checkout_url)
    expect(page.locator("h1")).to_have_text("Choisissez comment payer")
    assert page.locator(".badge.sandbox").is_visible()
    assert accessibility_violations(page) == []
    screenshot(page, f"moneroo-{shop.receiver.port}-checkout-methods")
    page.get_by_role("link", name="Test Payment Method").click()
    page.get_by_label("Numéro de téléphone").fill("(414) 951-8161")
    screenshot(page, f"moneroo-{shop.receiver.port}-checkout-phone")
    page.get_by_role("button", name="Payer").click()
    page.wait_for_url(f"{shop.shop_url}/moneroo/return*")
    landed = urlsplit(page.url)
    query = parse_qs(landed.query)
    assert query["order"] == [order]
    assert (query["paymentId"], query["paymentStatus"]) == ([payment_id], ["success"])
    context.close()

    verified = shop.api("GET", f"/payments/{payment_id}/verify").json()["data"]
    assert (verified["status"], verified["amount"], verified["currency"]["code"]) == (
        "success", 25, "USD"
    )  # fmt: skip
    assert verified["metadata"] == {"order_id": order}

    def webhook_of(event: str) -> dict[str, Any] | None:
        for received in shop.receiver.received:
            body = json.loads(received.body)
            if body["event"] == event and body["data"]["id"] == payment_id:
                expected = hmac.new(WEBHOOK_SECRET.encode(), received.body,
                                    hashlib.sha256).hexdigest()  # fmt: skip
                headers = {name.lower(): value for name, value in received.headers.items()}
                assert headers["x-moneroo-signature"] == expected
                return body
        return None

    wait_for(lambda: webhook_of("payment.success") is not None, "the payment.success webhook")
    success = webhook_of("payment.success")
    assert success is not None and success["data"]["metadata"] == {"order_id": order}
    assert webhook_of("payment.initiated") is not None

    def mail_to(address: str) -> Message | None:
        return next((m for m in shop.inbox.messages if address in m["To"]), None)

    wait_for(lambda: mail_to(customer_email) is not None, "the customer's receipt")
    receipt = mail_to(customer_email)
    assert receipt is not None and receipt.is_multipart()
    kinds = {part.get_content_type() for part in receipt.walk()}
    assert {"text/plain", "text/html"} <= kinds
    wait_for(lambda: mail_to("shop@example.test") is not None, "the merchant's notice")


def test_a_shop_takes_a_crypto_payment_on_the_devnet(shop, browser):
    """The checkout's crypto method: a Paydesk invoice for the same amount, paid from its
    page (the devnet's test wallet on this demo server), then back to the shop."""
    order = f"crypto-{time.monotonic_ns()}"
    created = shop.api("POST", "/payments/initialize", {
        "amount": 15, "currency": "USD", "description": f"Order {order}",
        "customer": {"email": f"{order}@customer.example", "first_name": "Ana",
                     "last_name": "Lima"},
        "return_url": f"{shop.shop_url}/moneroo/return?order={order}",
        "methods": ["crypto_usd"],
    })  # fmt: skip
    assert created.status_code == 201, created.text
    payment_id = created.json()["data"]["id"]
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.goto(created.json()["data"]["checkout_url"])
    page.get_by_role("link", name="Crypto USD").click()
    page.get_by_role("button", name="Pay $15.00").click()
    page.wait_for_url("**/moneroo/pay/**")
    choose_usdt_on_devnet(page, "en")
    assert "moneroo" in page.url  # still under the word the Flutter widget watches
    page.get_by_role("button", name=t("en", "Send test coins")).click()
    expect(page.locator("h1")).to_have_text(t("en", "Payment received"), timeout=20_000)
    screenshot(page, f"moneroo-{shop.receiver.port}-crypto-paid")
    page.get_by_role("link", name=t("en", "Back to the shop")).click()
    page.wait_for_url(f"{shop.shop_url}/moneroo/return*")
    query = parse_qs(urlsplit(page.url).query)
    assert (query["paymentId"], query["paymentStatus"], query["order"]) == (
        [payment_id], ["success"], [order]
    )  # fmt: skip
    context.close()
    verified = shop.api("GET", f"/payments/{payment_id}/verify").json()["data"]
    assert verified["status"] == "success"
    assert verified["capture"]["method"]["short_code"] == "crypto_usd"
