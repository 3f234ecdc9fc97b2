"""The payment page in a real headless Chromium, against a real `paydesk serve`: a payer
opens the invoice's `url`, picks coin and network, scans the QR code with the devnet
wallet (`paydesk devnet pay <what the QR says>`), watches the page turn to paid without
reloading it, and follows the button back to the shop. Screenshots of every step land in
`test-artifacts/screenshots/`."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from paydesk.web.i18n import Catalogues
from tests.browser import (
    PHONE,
    accessibility_violations,
    chromium,
    decode_qr,
    screenshot,
    shop_site,
)
from tests.conftest import (
    BACKENDS,
    compact,
    create_pg_database,
    drop_pg_database,
    free_port,
    sign,
    worker_id,
)
from tests.live import LiveMerchant, create_live_merchant, live_server, paydesk_env, run_cli

pytestmark = pytest.mark.slow

expect: Any = pytest.importorskip("playwright.sync_api").expect
CATALOGUES = Catalogues()
LANGUAGES = [language.code for language in CATALOGUES.languages]
#: Long enough for a block (0.5 s), the watcher (0.2 s) and the page's poller (0.2 s).
SETTLE_MS = 20_000


@dataclass
class Gateway:
    backend: str
    base_url: str
    env: dict[str, str]
    merchant: LiveMerchant

    def call(self, path: str, data: dict[str, Any]) -> dict[str, Any]:
        body = compact(data)
        answer = httpx.post(
            self.base_url + path,
            content=body,
            headers={
                "merchant": self.merchant.merchant,
                "sign": sign(body, self.merchant.payment_key),
                "content-type": "application/json",
            },
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["result"]

    def invoice(self, order_id: str, shop: str, **fields: str) -> dict[str, Any]:
        return self.call(
            "/v1/payment",
            {
                "amount": "15",
                "currency": "USD",
                "order_id": order_id,
                "url_success": f"{shop}/thanks/{order_id}",
                "url_return": f"{shop}/cart/{order_id}",
                **fields,
            },
        )

    def info(self, invoice: dict[str, Any]) -> dict[str, Any]:
        return self.call("/v1/payment/info", {"uuid": invoice["uuid"]})


def off_the_loop(function: Any, *args: Any) -> Any:
    """Run a helper that uses asyncio.run() while Playwright's own loop runs here."""
    with ThreadPoolExecutor(1) as executor:
        return executor.submit(function, *args).result()


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(request, tmp_path_factory, postgres_available) -> Iterator[Gateway]:
    backend = request.param
    database_url = None
    pg_name = f"paydesk_browser_{worker_id()}"
    if backend == "postgresql":
        if not postgres_available:
            pytest.skip("PostgreSQL is not reachable")
        database_url = off_the_loop(create_pg_database, pg_name)
    env = paydesk_env(
        tmp_path_factory.mktemp(f"browser-{backend}"),
        database_url,
        PAYDESK_EMBEDDED_WORKER="true",
        PAYDESK_DEVNET_BLOCK_SECONDS="0.5",
        PAYDESK_WATCHER_POLL_SECONDS="0.2",
        PAYDESK_PAGE_POLL_SECONDS="0.2",
        PAYDESK_STATIC_RATES='{"BTC/USD": "65000"}',
    )
    if database_url:
        migrated = run_cli("migrate", env=env)
        assert migrated.returncode == 0, migrated.stderr
    merchant = create_live_merchant(env)
    try:
        with live_server(env, free_port()) as base_url:
            yield Gateway(backend, base_url, {**env, "PAYDESK_PUBLIC_URL": base_url}, merchant)
    finally:
        if database_url:
            off_the_loop(drop_pg_database, pg_name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def shop() -> Iterator[tuple[str, list[str]]]:
    with shop_site() as site:
        yield site


def t(code: str, message: str, **variables: Any) -> str:
    """A message as the page shows it in `code`."""
    language = CATALOGUES.get(code)
    assert language is not None
    return str(language.gettext(message, **variables))


def assert_accessible(page: Any, where: str) -> None:
    violations = accessibility_violations(page)
    assert violations == [], f"{where}: {violations}"


def fits_the_screen(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def choose_usdt_on_devnet(page: Any, code: str) -> None:
    expect(page.locator("h1")).to_have_text(t(code, "Choose a coin"))
    page.locator("a.option", has_text="USDT").click()
    expect(page.locator("h1")).to_have_text(t(code, "Choose the network for %(coin)s", coin="USDT"))
    page.get_by_role("radio", name=re.compile("Paydesk devnet")).check()
    page.get_by_role("button", name=t(code, "Continue")).click()
    expect(page.locator("h1")).to_have_text(
        t(code, "Send %(amount)s %(coin)s", amount="15", coin="USDT")
    )


def scan_qr(page: Any) -> str:
    [text] = decode_qr(page.locator("figure.qr svg").screenshot())
    return text


def page_weight_without_qr(page: Any) -> int:
    """Bytes the browser fetched for the page (HTML, stylesheet, script), less the inline
    QR code's markup."""
    return int(
        page.evaluate(
            """() => {
                const [nav] = performance.getEntriesByType("navigation");
                const assets = performance.getEntriesByType("resource")
                    .reduce((sum, entry) => sum + entry.encodedBodySize, 0);
                const qr = document.querySelector("figure.qr svg");
                return nav.encodedBodySize + assets - (qr ? qr.outerHTML.length : 0);
            }"""
        )
    )


def test_a_payer_pays_from_the_page_alone(gateway, browser, shop):
    shop_url, visits = shop
    invoice = gateway.invoice(f"desk-{gateway.backend}", shop_url)
    context = browser.new_context(locale="en-US", permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(invoice["url"])
    assert invoice["url"].startswith(gateway.base_url)
    screenshot(page, f"{gateway.backend}-en-1-choose-coin")
    assert_accessible(page, "coin list")

    page.locator("a.option", has_text="USDT").click()
    screenshot(page, f"{gateway.backend}-en-2-choose-network")
    assert_accessible(page, "network list")
    page.get_by_role("radio", name=re.compile("Paydesk devnet")).check()
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("Send 15 USDT")
    screenshot(page, f"{gateway.backend}-en-3-pay")
    assert_accessible(page, "pay")
    weight = page_weight_without_qr(page)
    assert weight < 100 * 1024, weight

    fixed = gateway.info(invoice)
    assert (fixed["payer_currency"], fixed["network"]) == ("USDT", "devnet")
    expect(page.get_by_text("Network: Paydesk devnet")).to_be_visible()
    uri = scan_qr(page)
    assert uri == f"devnet:{fixed['address']}?amount=15&currency=USDT"

    page.get_by_role("button", name="Copy address").click()
    assert page.evaluate("navigator.clipboard.readText()") == fixed["address"]
    expect(page.get_by_role("button", name="Copy address")).to_have_text("Copied")
    page.get_by_role("button", name="Copy amount").click()
    assert page.evaluate("navigator.clipboard.readText()") == "15"

    timer = page.locator("time.timer")
    before = timer.inner_text()
    page.wait_for_timeout(2100)
    assert timer.inner_text() != before  # the countdown runs

    page.evaluate("window.stillTheSamePage = true")
    paid = run_cli("devnet", "pay", uri, env=gateway.env)  # the wallet that scanned it
    assert paid.returncode == 0, paid.stderr
    expect(page.locator("h1")).to_have_text("Payment received", timeout=SETTLE_MS)
    assert page.evaluate("window.stillTheSamePage") is True  # no reload
    screenshot(page, f"{gateway.backend}-en-4-paid")
    assert_accessible(page, "paid")
    assert any("/events" in url for url in requested)  # live by server-sent events
    assert all(url.startswith((gateway.base_url, "data:")) for url in requested), requested

    page.get_by_role("link", name="Back to the shop").click()
    page.wait_for_url(f"{shop_url}/thanks/{invoice['order_id']}")
    assert f"/thanks/{invoice['order_id']}" in visits
    assert gateway.info(invoice)["payment_status"] == "paid"
    context.close()


def test_in_french_on_a_phone(gateway, browser, shop):
    shop_url, visits = shop
    invoice = gateway.invoice(f"phone-fr-{gateway.backend}", shop_url)
    context = browser.new_context(locale="fr-FR", **PHONE)
    page = context.new_page()
    page.goto(invoice["url"])
    assert page.locator("html").get_attribute("lang") == "fr"
    assert "15,00" in page.locator(".due").inner_text()
    screenshot(page, f"{gateway.backend}-fr-phone-1-choose-coin")
    assert fits_the_screen(page)
    choose_usdt_on_devnet(page, "fr")
    screenshot(page, f"{gateway.backend}-fr-phone-2-pay")
    assert fits_the_screen(page)
    assert_accessible(page, "pay, fr, phone")
    # The QR code is big enough to scan on a phone, and readable.
    box = page.locator("figure.qr svg").bounding_box()
    assert box["width"] >= 200
    uri = scan_qr(page)

    paid = run_cli("devnet", "pay", uri, env=gateway.env)
    assert paid.returncode == 0, paid.stderr
    expect(page.locator("h1")).to_have_text(t("fr", "Payment received"), timeout=SETTLE_MS)
    screenshot(page, f"{gateway.backend}-fr-phone-3-paid")
    page.get_by_role("link", name=t("fr", "Back to the shop")).click()
    page.wait_for_url(f"{shop_url}/thanks/{invoice['order_id']}")
    assert f"/thanks/{invoice['order_id']}" in visits
    context.close()


@pytest.mark.parametrize("code", LANGUAGES)
def test_every_language_on_a_phone(gateway, browser, shop, code):
    shop_url, _ = shop
    invoice = gateway.invoice(f"lang-{code}-{gateway.backend}", shop_url)
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.goto(f"{invoice['url']}?lang={code}")
    if code != "en":
        assert t(code, "Payment received") != "Payment received", "not translated"
    html = page.locator("html")
    assert html.get_attribute("lang") == code
    assert html.get_attribute("dir") == ("rtl" if code == "ar" else "ltr")
    choose_usdt_on_devnet(page, code)
    assert fits_the_screen(page)
    screenshot(page, f"{gateway.backend}-{code}-phone-pay")
    gateway.call("/v1/devnet/pay", {"uuid": invoice["uuid"]})
    expect(page.locator("h1")).to_have_text(t(code, "Payment received"), timeout=SETTLE_MS)
    screenshot(page, f"{gateway.backend}-{code}-phone-paid")
    assert_accessible(page, f"paid, {code}")
    page.get_by_role("link", name=t(code, "Back to the shop")).click()
    page.wait_for_url(f"{shop_url}/thanks/{invoice['order_id']}")
    context.close()


def test_language_switcher_and_dark_mode(gateway, browser, shop):
    shop_url, _ = shop
    invoice = gateway.invoice(f"switch-{gateway.backend}", shop_url)
    context = browser.new_context(locale="en-US", color_scheme="dark")
    page = context.new_page()
    page.goto(invoice["url"])
    page.get_by_label("Language").select_option("de")  # submits by itself
    expect(page.locator("html")).to_have_attribute("lang", "de")
    page.goto(invoice["url"])  # remembered without the query
    expect(page.locator("html")).to_have_attribute("lang", "de")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(17, 19, 23)"  # the dark palette
    choose_usdt_on_devnet(page, "de")
    screenshot(page, f"{gateway.backend}-de-dark-pay")
    assert_accessible(page, "pay, dark")
    context.close()


def test_keyboard_order_and_focus(gateway, browser, shop):
    shop_url, _ = shop
    invoice = gateway.invoice(f"keys-{gateway.backend}", shop_url)
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.goto(invoice["url"])

    def focused() -> str:
        return str(
            page.evaluate(
                "(() => { const e = document.activeElement;"
                " return e.tagName + (e.id ? '#' + e.id : '') + ' ' + e.textContent.trim(); })()"
            )
        )

    page.keyboard.press("Tab")
    assert focused().startswith("A Skip to content")
    page.keyboard.press("Tab")
    assert focused().startswith("SELECT#lang")
    page.keyboard.press("Tab")
    assert focused().startswith("A USDT")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Choose the network for USDT")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # skip link, language, the network's radio
    assert page.evaluate("document.activeElement.type") == "radio"
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    assert focused().startswith("BUTTON Continue")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Send 15 USDT")
    # The state change moves focus to the new heading, so a screen reader announces it.
    gateway.call("/v1/devnet/pay", {"uuid": invoice["uuid"]})
    expect(page.locator("h1")).to_have_text("Payment received", timeout=SETTLE_MS)
    assert page.evaluate("document.activeElement.tagName") in ("H1", "BODY")
    context.close()


def test_long_polling_when_event_streams_are_missing(gateway, browser, shop):
    shop_url, _ = shop
    invoice = gateway.invoice(f"poll-{gateway.backend}", shop_url)
    context = browser.new_context(locale="en-US")
    context.add_init_script("delete window.EventSource")
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(invoice["url"])
    choose_usdt_on_devnet(page, "en")
    gateway.call("/v1/devnet/pay", {"uuid": invoice["uuid"], "amount": "5"})
    expect(page.locator("h1")).to_have_text("Part of the amount arrived", timeout=SETTLE_MS)
    expect(page.locator("#amount")).to_have_text("10")
    # The QR code now asks for what remains.
    assert scan_qr(page).endswith("?amount=10&currency=USDT")
    gateway.call("/v1/devnet/pay", {"uuid": invoice["uuid"], "amount": "10"})
    expect(page.locator("h1")).to_have_text("Payment received", timeout=SETTLE_MS)
    assert any("/status" in url for url in requested)
    assert not any("/events" in url for url in requested)
    context.close()


def test_a_second_tab_follows_the_first(gateway, browser, shop):
    """Two tabs on one invoice: the coin chosen in one appears in the other."""
    shop_url, _ = shop
    invoice = gateway.invoice(f"tabs-{gateway.backend}", shop_url)
    context = browser.new_context(locale="en-US")
    first, second = context.new_page(), context.new_page()
    first.goto(invoice["url"])
    second.goto(invoice["url"])
    choose_usdt_on_devnet(first, "en")
    expect(second.locator("h1")).to_have_text("Send 15 USDT", timeout=SETTLE_MS)
    address = gateway.info(invoice)["address"]
    expect(second.locator("#address")).to_have_text(address)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not first.locator("figure.qr").count():
        time.sleep(0.1)
    assert scan_qr(first) == scan_qr(second)
    context.close()


def test_the_event_stream_speaks_server_sent_events(gateway, shop):
    shop_url, _ = shop
    invoice = gateway.invoice(f"sse-{gateway.backend}", shop_url, to_currency="USDT")
    url = f"{gateway.base_url}/pay/{invoice['uuid']}/events"
    events: list[dict[str, Any]] = []
    with httpx.stream("GET", url, params={"lang": "fr"}, timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in stream.iter_lines():
            if line.startswith("retry:"):
                continue
            if line == "":
                if "data" in fields:
                    events.append({**fields, **json.loads(fields["data"])})
                    if len(events) == 1:  # the page as it is now; then the payer pays
                        gateway.call("/v1/devnet/pay", {"uuid": invoice["uuid"]})
                fields = {}
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
    # The stream ends by itself once the invoice is final.
    assert events[0]["state"] == "pay" and events[-1]["state"] == "paid"
    assert all(event["event"] == "state" and event["id"] == event["version"] for event in events)
    assert t("fr", "Payment received") in events[-1]["html"]
    # Reconnecting with the last id of a final invoice: nothing more will come.
    again = httpx.get(url, headers={"last-event-id": events[-1]["id"]}, timeout=10)
    assert again.status_code == 204


def test_a_person_pays_from_the_page_alone_with_the_test_wallet(gateway, browser, shop):
    """On a demo server (devnet the only network) the page carries the devnet's wallet:
    no command line, no API — first too little, then the rest."""
    shop_url, visits = shop
    invoice = gateway.invoice(f"wallet-{gateway.backend}", shop_url)
    context = browser.new_context(locale="es-ES", **PHONE)
    page = context.new_page()
    page.goto(invoice["url"])
    choose_usdt_on_devnet(page, "es")
    page.evaluate("window.stillTheSamePage = true")
    page.get_by_label(t("es", "Amount to send")).fill("5")
    page.get_by_role("button", name=t("es", "Send test coins")).click()
    expect(page.locator("h1")).to_have_text(
        t("es", "Part of the amount arrived"), timeout=SETTLE_MS
    )
    expect(page.get_by_label(t("es", "Amount to send"))).to_have_value("10")
    screenshot(page, f"{gateway.backend}-es-phone-test-wallet-underpaid")
    page.get_by_role("button", name=t("es", "Send test coins")).click()
    expect(page.locator("h1")).to_have_text(t("es", "Payment received"), timeout=SETTLE_MS)
    assert page.evaluate("window.stillTheSamePage") is True
    page.get_by_role("link", name=t("es", "Back to the shop")).click()
    page.wait_for_url(f"{shop_url}/thanks/{invoice['order_id']}")
    assert f"/thanks/{invoice['order_id']}" in visits
    assert gateway.info(invoice)["payment_amount"] == "15.00000000"
    context.close()


def test_a_static_wallet_page_in_arabic_on_a_phone(gateway, browser):
    """A customer's permanent deposit address: the QR code a wallet app scans, the network
    named plainly, right to left, accessible."""
    wallet = gateway.call(
        "/v1/wallet",
        {"currency": "USDT", "network": "devnet", "order_id": f"customer-{gateway.backend}"},
    )
    context = browser.new_context(locale="ar", **PHONE)
    page = context.new_page()
    page.goto(wallet["url"])
    expect(page.locator("h1")).to_have_text(t("ar", "Your %(coin)s deposit address", coin="USDT"))
    assert page.evaluate("document.documentElement.dir") == "rtl"
    assert fits_the_screen(page)
    assert scan_qr(page) == f"devnet:{wallet['address']}?currency=USDT"
    expect(page.locator("#address")).to_have_text(wallet["address"])
    assert_accessible(page, "static wallet page, Arabic")
    screenshot(page, f"{gateway.backend}-ar-phone-static-wallet")
    context.close()
