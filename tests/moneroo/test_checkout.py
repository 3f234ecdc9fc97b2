"""The hosted checkout over HTTP: choosing a method, giving only what it needs, the
sandbox's test numbers, the redirect back to the shop, cancelling, abandonment, and crypto
through a Paydesk invoice on the devnet."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from paydesk.checkout.models import CheckoutPayment
from paydesk.db import utcnow
from paydesk.invoices.models import Invoice
from paydesk.ledger import service as ledger
from paydesk.ledger.check import check_ledger
from paydesk.ledger.models import AccountKind
from paydesk.webhooks.models import WebhookEvent
from tests.devnet import mine
from tests.moneroo.test_payments_api import MonerooClient, keys_of

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def sandbox(http, context, merchant) -> MonerooClient:
    return MonerooClient(http, (await keys_of(context, merchant.merchant_id)).sandbox_secret_key)


async def new_payment(sandbox: MonerooClient, **fields) -> str:
    created = await sandbox.initialize(**fields)
    assert created.status_code == 201, created.text
    return created.json()["data"]["id"]


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def follow_to_shop(http, response) -> str:
    """Follow the checkout (its redirects, and the page that moves on by itself once the
    payment is over) until it leaves Paydesk; that URL."""
    for _ in range(6):
        if response.status_code == 200:
            found = re.search(r'http-equiv="refresh" content="0; url=([^"]+)"', response.text)
            assert found, response.text
            response = await http.get(found.group(1))
            continue
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        if location.startswith("https://shop.example"):
            return location
        response = await http.get(path_of(location))
    raise AssertionError("never sent back to the shop")


async def pay(http, payment_id: str, method: str, phone: str | None = None):
    body = f"method={method}" + (f"&phone={phone}" if phone else "")
    return await http.post(f"/moneroo/checkout/{payment_id}/pay?lang=en", content=body,
                           headers=FORM)  # fmt: skip


async def events_of(context, payment_id: str) -> list[str]:
    async with context.db.reader() as session:
        rows = await session.scalars(select(WebhookEvent.payload).order_by(WebhookEvent.id))
        return [row["event"] for row in rows if row.get("data", {}).get("id") == payment_id]


async def test_a_payer_pays_with_the_sandbox_test_number(http, context, sandbox, merchant):
    payment_id = await new_payment(sandbox)
    page = await http.get(f"/moneroo/checkout/{payment_id}?lang=en")
    assert page.status_code == 200
    assert "Choose how to pay" in page.text and "Test Payment Method" in page.text
    assert "Test mode: no real money moves." in page.text  # the sandbox mark
    assert "/moneroo/checkout/" in page.text and "Phone number" not in page.text

    chosen = await http.get(f"/moneroo/checkout/{payment_id}?lang=en&method=moneroo_payment_demo")
    assert 'name="phone"' in chosen.text and "Pay $100.00" in chosen.text

    paid = await pay(http, payment_id, "moneroo_payment_demo", "(414) 951-8161")
    shop = await follow_to_shop(http, paid)
    parts = urlsplit(shop)
    query = parse_qs(parts.query)
    assert parts.path == "/thanks" and query["order"] == ["123"]  # the shop's own kept
    assert (query["paymentId"], query["paymentStatus"]) == ([payment_id], ["success"])
    assert (query["monerooPaymentId"], query["monerooPaymentStatus"]) == ([payment_id], ["success"])

    verified = (await sandbox.call("GET", f"/v1/payments/{payment_id}/verify")).json()["data"]
    assert verified["status"] == "success" and verified["return_url"] == shop
    capture = verified["capture"]
    assert capture["method"]["short_code"] == "moneroo_payment_demo"
    assert capture["gateway"]["short_code"] == "moneroo_payment_test"
    assert capture["gateway"]["transaction_status"] == "test_success"
    assert capture["phone_number"] == "4149518161" and verified["payment_phone_number"]
    assert await events_of(context, payment_id) == ["payment.initiated", "payment.success"]
    # Booked once: the test gateway holds it, the merchant's sandbox book owes it.
    async with context.db.reader() as session:
        business = await ledger.find_account(
            session, AccountKind.MERCHANT_BUSINESS, "USD", owner=merchant.merchant_id,
            network="sandbox",
        )  # fmt: skip
        assert business is not None and await ledger.balance(session, business) == 100
        assert (await check_ledger(session)).ok
    # Over: the checkout only sends the payer back.
    again = await http.get(f"/moneroo/checkout/{payment_id}")
    assert await follow_to_shop(http, again) == shop


@pytest.mark.parametrize(
    ("phone", "status"), [("4149518163", "failed"), ("+1 414 951 8163", "failed"),
                          ("22997000001", "failed")],
)  # fmt: skip
async def test_test_numbers_that_fail(http, context, sandbox, phone, status):
    payment_id = await new_payment(sandbox)
    shop = await follow_to_shop(http, await pay(http, payment_id, "moneroo_payment_demo", phone))
    assert parse_qs(urlsplit(shop).query)["paymentStatus"] == [status]
    verified = (await sandbox.call("GET", f"/v1/payments/{payment_id}")).json()["data"]
    assert verified["status"] == "failed" and verified["capture"]["failure_message"]
    assert await events_of(context, payment_id) == ["payment.initiated", "payment.failed"]


async def test_a_pending_test_payment_stays_pending(http, context, sandbox):
    payment_id = await new_payment(sandbox)
    paid = await pay(http, payment_id, "moneroo_payment_demo", "4149518162")
    assert paid.status_code == 303
    page = await http.get(path_of(paid.headers["location"]))
    assert page.status_code == 200 and 'http-equiv="refresh"' in page.text
    assert "Confirm the payment on your phone" in page.text
    back = await http.get(f"/moneroo/checkout/{payment_id}/return")
    assert back.headers["location"].startswith(f"/moneroo/checkout/{payment_id}")
    verified = (await sandbox.call("GET", f"/v1/payments/{payment_id}/verify")).json()["data"]
    assert verified["status"] == "pending"
    assert await events_of(context, payment_id) == ["payment.initiated"]  # none for pending
    twice = await pay(http, payment_id, "moneroo_payment_demo", "4149518161")
    assert "error=busy" in twice.headers["location"]


async def test_only_what_the_method_needs_and_only_allowed_methods(http, sandbox):
    payment_id = await new_payment(sandbox)
    missing = await pay(http, payment_id, "moneroo_payment_demo")
    assert "error=phone" in missing.headers["location"]
    shown = await http.get(path_of(missing.headers["location"]))
    assert "Enter the phone number that will pay." in shown.text
    unknown = await pay(http, payment_id, "mtn_bj")  # not one this payment offers
    assert "error=method" in unknown.headers["location"]
    restricted = await new_payment(
        sandbox, restricted_phone={"number": "4149518161", "country_code": "US"}
    )
    form = await http.get(f"/moneroo/checkout/{restricted}?lang=en&method=moneroo_payment_demo")
    assert 'name="phone"' not in form.text  # known already: not asked
    other = await pay(http, restricted, "moneroo_payment_demo", "4149518163")
    assert "error=restricted" in other.headers["location"]
    shop = await follow_to_shop(http, await pay(http, restricted, "moneroo_payment_demo"))
    assert "paymentStatus=success" in shop


async def test_cancel_and_abandon(http, context, sandbox):
    payment_id = await new_payment(sandbox)
    cancelled = await http.post(f"/moneroo/checkout/{payment_id}/cancel")
    shop = await follow_to_shop(http, cancelled)
    assert parse_qs(urlsplit(shop).query)["paymentStatus"] == ["cancelled"]
    assert await events_of(context, payment_id) == ["payment.initiated", "payment.cancelled"]

    forgotten = await new_payment(sandbox)
    started = await new_payment(sandbox)
    await pay(http, started, "moneroo_payment_demo", "4149518162")  # pending: not abandoned
    async with context.db.transaction() as session:
        assert await context.checkout.cancel_abandoned(session, utcnow()) == 0
        later = utcnow() + timedelta(minutes=11)
        assert await context.checkout.cancel_abandoned(session, later) == 1
    async with context.db.reader() as session:
        statuses = dict(
            (await session.execute(select(CheckoutPayment.public_id, CheckoutPayment.status))).all()
        )
    assert (statuses[forgotten], statuses[started]) == ("cancelled", "pending")


async def test_crypto_pays_through_an_invoice_on_the_devnet(http, context, sandbox):
    payment_id = await new_payment(sandbox, amount=20, methods=["crypto_usd"])
    page = await http.get(f"/moneroo/checkout/{payment_id}?lang=en")
    assert "Crypto USD" in page.text
    opened = await pay(http, payment_id, "crypto_usd")
    location = opened.headers["location"]
    assert location.startswith("/moneroo/pay/")
    invoice_page = await http.get(location)
    assert invoice_page.status_code == 200
    # Its links and forms stay under the word; none leads to the plain path.
    assert "/moneroo/pay/" in invoice_page.text and '"/pay/' not in invoice_page.text
    async with context.db.reader() as session:
        invoice = await session.scalar(select(Invoice))
    assert (invoice.amount, invoice.currency) == (Decimal("20"), "USD")
    assert invoice.url_success.endswith(f"/moneroo/checkout/{payment_id}/return")
    async with context.db.transaction() as session:
        locked = await context.invoices.get_for_update(session, invoice.uuid)
        await context.invoices.choose(session, locked, "USDT", "devnet", utcnow())
    async with context.db.transaction() as session:
        locked = await context.invoices.get_for_update(session, invoice.uuid)
        await context.devnet.pay_invoice(session, locked, context.invoices)
    await mine(context)
    verified = (await sandbox.call("GET", f"/v1/payments/{payment_id}/verify")).json()["data"]
    assert verified["status"] == "success" and verified["capture"]["method"]["short_code"] == (
        "crypto_usd"
    )
    assert await events_of(context, payment_id) == ["payment.initiated", "payment.success"]
    back = await http.get(f"/moneroo/checkout/{payment_id}/return")
    assert "paymentStatus=success" in back.headers["location"]


async def test_unknown_payment_is_a_page_not_found(http):
    page = await http.get("/moneroo/checkout/py_000000000000?lang=en")
    assert page.status_code == 404 and "Payment not found" in page.text
