"""The payment page over HTTP: the payer's choice, every state, live status, languages,
headers. (The same page in a real browser: test_page_browser.py.)"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from paydesk.db import utcnow
from paydesk.invoices.models import Invoice
from paydesk.webhooks.models import WebhookEvent
from tests.chains.test_testmode import follow

PAGE_ASSETS = ("paydesk.css", "pay.js")


@pytest.fixture
def settings_overrides():
    return {"static_rates": {"BTC/USD": "65000"}, "page_poll_seconds": 0.05}


async def fiat_invoice(api, order_id="p1", **extra):
    body = {"amount": "15", "currency": "USD", "order_id": order_id, **extra}
    return await api.result("/v1/payment", body)


async def info(api, invoice):
    return await api.result("/v1/payment/info", {"uuid": invoice["uuid"]})


def live_version(html: str) -> str:
    return re.search(r'data-version="([0-9a-f]+)"', html).group(1)


async def choose(http, invoice, currency="USDT", network="devnet"):
    return await http.post(
        f"/pay/{invoice['uuid']}/choose?lang=en",
        content=f"currency={currency}&network={network}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )


async def test_choose_coin_then_network_fixes_the_invoice(api, http):
    invoice = await fiat_invoice(api)
    assert invoice["address"] is None
    page = await http.get(f"/pay/{invoice['uuid']}")
    assert page.status_code == 200
    assert "Choose a coin" in page.text and "$15.00" in page.text
    assert f"/pay/{invoice['uuid']}?lang=en&amp;currency=BTC" in page.text

    networks = await http.get(f"/pay/{invoice['uuid']}", params={"currency": "BTC"})
    assert "Choose the network for BTC" in networks.text
    # The price shown before choosing: 15 USD at 65000.
    assert 'value="devnet"' in networks.text and "0.00023077 BTC" in networks.text

    chosen = await choose(http, invoice, "BTC")
    assert chosen.status_code == 303
    assert chosen.headers["location"] == f"/pay/{invoice['uuid']}?lang=en"
    fixed = await info(api, invoice)
    assert (fixed["payer_currency"], fixed["network"], fixed["payer_amount"]) == (
        "BTC", "devnet", "0.00023077"
    )  # fmt: skip
    assert fixed["address"].startswith("pdev1")
    assert fixed["expired_at"] == invoice["expired_at"]

    page = await http.get(f"/pay/{invoice['uuid']}")
    assert "Send 0.00023077 BTC" in page.text
    assert fixed["address"] in page.text and "<svg" in page.text
    assert "Network: Paydesk devnet" in page.text

    # A second choice (another tab) changes nothing.
    again = await choose(http, invoice, "USDT")
    assert again.status_code == 303
    assert (await info(api, invoice))["address"] == fixed["address"]


async def test_only_allowed_coins_are_offered(api, http):
    invoice = await fiat_invoice(
        api,
        currencies=[{"currency": "USDT"}, {"currency": "BTC", "network": "devnet"}],
        except_currencies=[{"currency": "BTC"}],
    )
    page = await http.get(f"/pay/{invoice['uuid']}")
    # One coin left: the page goes straight to its networks.
    assert "Choose the network for USDT" in page.text
    assert 'name="currency" value="USDT"' in page.text
    assert "BTC" not in page.text and "ETH" not in page.text

    refused = await choose(http, invoice, "ETH")
    assert refused.status_code == 303
    assert (await info(api, invoice))["payer_currency"] is None


@pytest.mark.parametrize(
    "settings_overrides",
    # eth switched on (its node is never asked here): USDT then has two networks.
    [{"networks": ["devnet", "eth"], "chain_nodes": {"eth": "http://127.0.0.1:9"}}],
)
async def test_a_coin_fixed_at_creation_leaves_the_network_to_choose(api, http):
    invoice = await fiat_invoice(api, to_currency="USDT")
    assert invoice["payer_currency"] == "USDT" and invoice["address"] is None
    page = await http.get(f"/pay/{invoice['uuid']}")
    assert "Choose the network for USDT" in page.text
    assert 'value="eth"' in page.text and "Ethereum" in page.text
    assert 'value="devnet"' in page.text
    assert (await choose(http, invoice, "USDT", "devnet")).status_code == 303
    fixed = await info(api, invoice)
    assert fixed["network"] == "devnet" and fixed["payer_amount"] == "15.00000000"


async def test_live_status_follows_the_payment_to_paid(api, http, context):
    invoice = await api.result(
        "/v1/payment",
        {
            "amount": "20",
            "currency": "USDT",
            "network": "devnet",
            "order_id": "live-1",
            "url_success": "https://shop.test/thanks",
            "url_return": "https://shop.test/cart",
        },
    )
    page = await http.get(f"/pay/{invoice['uuid']}")
    assert "Waiting for your payment" in page.text
    assert 'href="https://shop.test/cart"' in page.text
    version = live_version(page.text)

    status = await http.get(
        f"/pay/{invoice['uuid']}/status", params={"version": version, "wait": "false"}
    )
    assert status.json()["version"] == version and status.json()["state"] == "pay"

    await api.result("/v1/devnet/pay", {"uuid": invoice["uuid"]})
    await follow(context)
    seen = (await http.get(f"/pay/{invoice['uuid']}/status", params={"version": version})).json()
    assert seen["state"] == "confirming" and seen["version"] != version
    assert "0 of 1 confirmation" in seen["html"]

    await api.result("/v1/devnet/mine", {})
    await follow(context)
    paid = (
        await http.get(f"/pay/{invoice['uuid']}/status", params={"version": seen["version"]})
    ).json()
    assert paid["state"] == "paid" and paid["final"] is True
    assert 'href="https://shop.test/thanks"' in paid["html"]
    assert "Thank you. Shop received 20 USDT." in paid["html"]


async def test_long_poll_waits_for_a_change(api, http, context):
    invoice = await api.result(
        "/v1/payment",
        {"amount": "20", "currency": "USDT", "network": "devnet", "order_id": "lp"},
    )
    page = await http.get(f"/pay/{invoice['uuid']}")
    version = live_version(page.text)
    state = http._transport.app.state  # the app the client talks to

    async def pay_soon():
        await asyncio.sleep(0.2)
        await api.result("/v1/devnet/pay", {"uuid": invoice["uuid"], "amount": "5"})
        await follow(context)
        await api.result("/v1/devnet/mine", {})
        await follow(context)

    payer = asyncio.create_task(pay_soon())
    answer = (await http.get(f"/pay/{invoice['uuid']}/status", params={"version": version})).json()
    await payer
    assert answer["version"] != version
    assert state.live_status is not None  # one poller served the wait


async def test_underpaid_shows_what_remains(api, http, context):
    invoice = await api.result(
        "/v1/payment",
        {"amount": "20", "currency": "USDT", "network": "devnet", "order_id": "under"},
    )
    await api.result("/v1/devnet/pay", {"uuid": invoice["uuid"], "amount": "5"})
    await api.result("/v1/devnet/mine", {})
    await follow(context)
    page = await http.get(f"/pay/{invoice['uuid']}")
    assert "Part of the amount arrived" in page.text
    assert "Received 5 of 20 USDT. Send the remaining 15 USDT" in page.text
    assert 'data-copy="15"' in page.text  # the copy button copies what remains


async def test_expired_page_expires_the_invoice_once(api, http, context):
    invoice = await fiat_invoice(api, order_id="late", url_return="https://shop.test/cart")
    async with context.db.transaction() as session:
        await session.execute(
            update(Invoice)
            .where(Invoice.uuid == uuid.UUID(invoice["uuid"]))
            .values(expired_at=utcnow() - timedelta(seconds=1))
        )
    page = await http.get(f"/pay/{invoice['uuid']}")
    assert "This invoice expired" in page.text
    assert "Start again" not in page.text  # renewing is off by default
    await http.get(f"/pay/{invoice['uuid']}")
    assert (await info(api, invoice))["status"] == "cancel"
    async with context.db.reader() as session:
        events = (await session.scalars(select(WebhookEvent))).all()
    assert [event.payload["status"] for event in events] == ["cancel"]
    # Choosing a coin on an expired invoice does nothing.
    await choose(http, invoice)
    assert (await info(api, invoice))["address"] is None


@pytest.mark.parametrize(
    "settings_overrides",
    [{"payer_can_renew": True, "static_rates": {"BTC/USD": "65000"}}],
)
async def test_renew_when_the_operator_allows_it(api, http, context):
    invoice = await api.result(
        "/v1/payment",
        {"amount": "20", "currency": "USDT", "network": "devnet", "order_id": "renew"},
    )
    async with context.db.transaction() as session:
        await session.execute(
            update(Invoice)
            .where(Invoice.uuid == uuid.UUID(invoice["uuid"]))
            .values(expired_at=utcnow() - timedelta(seconds=1))
        )
    page = await http.get(f"/pay/{invoice['uuid']}")
    assert "Start again with a new address" in page.text
    renewed = await http.post(f"/pay/{invoice['uuid']}/renew")
    assert renewed.status_code == 303
    now = await info(api, invoice)
    assert now["status"] == "check" and now["address"] != invoice["address"]
    assert now["expired_at"] > invoice["expired_at"] - 5


async def test_unknown_and_malformed_invoices_are_not_found(http):
    for path in (f"/pay/{uuid.uuid4()}", "/pay/not-a-uuid", f"/pay/{uuid.uuid4()}/status"):
        response = await http.get(path)
        assert response.status_code == 404, path
    page = await http.get(f"/pay/{uuid.uuid4()}", headers={"accept-language": "fr"})
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="fr"' in page.text


async def test_language_from_header_switcher_and_cookie(api, http):
    invoice = await fiat_invoice(api, order_id="lang")
    url = f"/pay/{invoice['uuid']}"
    french = await http.get(url, headers={"accept-language": "fr-CH, fr;q=0.9, en;q=0.5"})
    assert '<html lang="fr" dir="ltr">' in french.text
    assert "15,00" in french.text  # the price the French way
    arabic = await http.get(url, params={"lang": "ar"})
    assert '<html lang="ar" dir="rtl">' in arabic.text
    assert arabic.cookies.get("paydesk_lang") == "ar"
    # The switcher's choice is remembered over the browser's header.
    remembered = await http.get(url, headers={"accept-language": "de"})
    assert '<html lang="ar"' in remembered.text
    http.cookies.clear()
    german = await http.get(url, headers={"accept-language": "de"})
    assert '<html lang="de"' in german.text


async def test_pages_use_nothing_from_elsewhere_and_stay_small(api, http):
    invoice = await api.result(
        "/v1/payment",
        {"amount": "20", "currency": "USDT", "network": "devnet", "order_id": "small"},
    )
    page = await http.get(f"/pay/{invoice['uuid']}")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    # No URL of another host anywhere in the page.
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
    html_without_qr = re.sub(r"<svg.*?</svg>", "", page.text, flags=re.S)
    total = len(html_without_qr.encode())
    for asset in PAGE_ASSETS:
        url = re.search(rf'"(/static/{re.escape(asset)}\?v=\w+)"', page.text)[1]
        response = await http.get(url)
        assert response.status_code == 200
        assert "immutable" in response.headers["cache-control"]
        total += len(response.content)
    assert total < 100 * 1024, total


async def test_the_test_wallet_belongs_to_demo_servers_only(api, http, context):
    """Off as soon as a real network is enabled (here: the test settings' default, devnet
    alone, shows it; a server with eth does not)."""
    invoice = await api.result(
        "/v1/payment",
        {"amount": "20", "currency": "USDT", "network": "devnet", "order_id": "wallet"},
    )
    page = await http.get(f"/pay/{invoice['uuid']}")
    assert "Send test coins" in page.text
    sent = await http.post(
        f"/pay/{invoice['uuid']}/test-wallet",
        content="amount=7,5",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert sent.status_code == 303
    await follow(context)
    await api.result("/v1/devnet/mine", {})
    await follow(context)
    assert (await info(api, invoice))["payment_amount"] == "7.50000000"


@pytest.mark.parametrize(
    "settings_overrides",
    [{"networks": ["devnet", "eth"], "chain_nodes": {"eth": "http://127.0.0.1:9"}}],
)
async def test_no_test_wallet_beside_real_networks(api, http, context):
    invoice = await api.result(
        "/v1/payment",
        {"amount": "20", "currency": "USDT", "network": "devnet", "order_id": "no-wallet"},
    )
    page = await http.get(f"/pay/{invoice['uuid']}")
    assert "Send test coins" not in page.text
    refused = await http.post(
        f"/pay/{invoice['uuid']}/test-wallet",
        content="amount=20",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert refused.status_code == 303
    await follow(context)
    assert (await info(api, invoice))["status"] == "check"
