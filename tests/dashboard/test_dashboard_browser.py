"""A person who has never used Paydesk, in real Chromium against a real `paydesk serve`:
signs up, confirms from the email a real SMTP server on 127.0.0.1 caught, creates a
project, gets its keys, makes a payment link, pays it on devnet from the payment page, and
sees it paid in the invoice list, the wallet and the statistics. No command line."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.browser import (
    Inbox,
    accessibility_violations,
    chromium,
    decode_qr,
    screenshot,
    smtp_inbox,
)
from tests.conftest import (
    BACKENDS,
    compact,
    create_pg_database,
    drop_pg_database,
    free_port,
    worker_id,
)
from tests.conftest import sign as sign_body
from tests.live import live_server, paydesk_env, run_cli
from tests.paypage.test_page_browser import off_the_loop

pytestmark = pytest.mark.slow

expect: Any = pytest.importorskip("playwright.sync_api").expect
SETTLE_MS = 20_000
PASSWORD = "my first paydesk password"


def link_to(inbox: Inbox, address: str, path: str) -> str:
    """The last link to /dashboard/`path`/… emailed to `address`, waiting for it."""
    deadline = time.monotonic() + SETTLE_MS / 1000
    while time.monotonic() < deadline:
        for message in reversed(inbox.messages):
            if address in message["To"]:
                for part in message.walk():
                    if part.get_content_type() == "text/plain":
                        text = part.get_payload(decode=True).decode()
                        found = re.search(rf"(http://\S+/dashboard/{path}/[\w-]+)", text)
                        if found:
                            return found.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no {path} email reached {address}")


@dataclass
class Server:
    backend: str
    base_url: str
    inbox: Inbox


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    with smtp_inbox() as caught:
        yield caught


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory, postgres_available, inbox) -> Iterator[Server]:
    """The embedded default (SQLite, devnet, the worker inside `serve`, API access granted
    at once) with SMTP set; on PostgreSQL the same choices are made explicitly."""
    backend = request.param
    handler, smtp_port = inbox
    database_url = None
    pg_name = f"paydesk_dashboard_browser_{worker_id()}"
    extra = {}
    if backend == "postgresql":
        if not postgres_available:
            pytest.skip("PostgreSQL is not reachable")
        database_url = off_the_loop(create_pg_database, pg_name)
        extra = {"PAYDESK_EMBEDDED_WORKER": "true", "PAYDESK_API_ACCESS_AUTO_APPROVE": "true"}
    env = paydesk_env(
        tmp_path_factory.mktemp(f"dashboard-{backend}"),
        database_url,
        PAYDESK_DEVNET_BLOCK_SECONDS="0.5",
        PAYDESK_WATCHER_POLL_SECONDS="0.2",
        PAYDESK_PAGE_POLL_SECONDS="0.2",
        PAYDESK_SMTP_HOST="127.0.0.1",
        PAYDESK_SMTP_PORT=str(smtp_port),
        PAYDESK_SMTP_STARTTLS="false",  # the loopback test server speaks plain SMTP
        **extra,
    )
    if database_url:
        migrated = run_cli("migrate", env=env)
        assert migrated.returncode == 0, migrated.stderr
    try:
        with live_server(env, free_port()) as base_url:
            yield Server(backend, base_url, handler)
    finally:
        if database_url:
            off_the_loop(drop_pg_database, pg_name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def assert_accessible(page: Any, where: str) -> None:
    violations = accessibility_violations(page)
    assert violations == [], f"{where}: {violations}"


def test_from_nothing_to_a_paid_payment_link(server, browser):
    shot = f"dashboard-{server.backend}"
    owner = f"owner-{server.backend}@shop.example"
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = context.new_page()

    # Nothing but the server's address.
    page.goto(server.base_url)
    expect(page.locator("h1")).to_have_text("Sign in to Paydesk")
    page.get_by_role("link", name="Create an account").click()
    expect(page.locator("h1")).to_have_text("Create your Paydesk account")
    assert_accessible(page, "sign-up")
    page.get_by_label("Email").fill(owner)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("h1")).to_have_text("Check your email")

    # The email, from the SMTP server on loopback.
    page.goto(link_to(server.inbox, owner, "confirm"))
    page.get_by_role("button", name="Confirm and sign in").click()
    expect(page.locator("h1")).to_have_text("Create a project")
    cookies = {c["name"]: c for c in context.cookies()}
    session = cookies["paydesk_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax" and session["path"] == "/dashboard"

    page.get_by_label("Project name").fill("Sock shop")
    page.get_by_role("button", name="Create the project").click()
    expect(page.locator("h1")).to_have_text("How will you take payments?")
    assert_accessible(page, "integration")
    page.get_by_role("radio", name=re.compile("API")).check()
    page.get_by_role("button", name="Continue").click()

    # API access: asked, granted at once on this server, and the key works.
    expect(page.locator("h1")).to_have_text("API access")
    page.get_by_label("Website").fill("https://socks.example")
    page.get_by_label("Short description").fill("Wool socks, knitted to order.")
    page.get_by_role("button", name="Request API access").click()
    payment_key = page.get_by_test_id("payment-key").inner_text().strip()
    merchant_id = page.url.split("/")[5]
    body = compact({"order_id": "nothing-yet"})
    answered = httpx.post(f"{server.base_url}/v1/payment/info", content=body, headers={
        "merchant": merchant_id, "sign": sign_body(body, payment_key),
        "content-type": "application/json"}, timeout=10)  # fmt: skip
    # Signed right: the answer is about the order, not about the signature.
    assert answered.status_code != 401 and answered.json()["state"] == 1, answered.text
    assert "sign" not in answered.json()["message"].lower()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Show the payout key").click()
    assert page.get_by_test_id("payout-key").inner_text().strip()
    assert_accessible(page, "api")
    screenshot(page, f"{shot}-api")

    # A payment link, shared as a link and a QR code.
    page.get_by_role("link", name="Payment links").click()
    page.get_by_label("Amount").fill("15")
    page.get_by_label("Currency").select_option("USD")
    page.get_by_label("Description").fill("Two pairs of wool socks")
    page.get_by_role("button", name="Create the payment link").click()
    expect(page.locator("h1")).to_have_text("Payment link")
    link = page.get_by_test_id("link-url").inner_text().strip()
    assert re.fullmatch(rf"{re.escape(server.base_url)}/pay/[0-9a-f-]{{36}}", link), link
    assert decode_qr(page.get_by_test_id("link-qr").screenshot()) == [link]
    assert_accessible(page, "link")
    screenshot(page, f"{shot}-link")

    # The payer, in another browser: pays it with the devnet's test wallet.
    payer_context = browser.new_context(locale="en-GB")
    payer = payer_context.new_page()
    payer.goto(link)
    expect(payer.get_by_text("Two pairs of wool socks")).to_be_visible()
    payer.locator("a.option", has_text="USDT").click()
    payer.get_by_role("radio", name=re.compile("Paydesk devnet")).check()
    payer.get_by_role("button", name="Continue").click()
    expect(payer.locator("h1")).to_have_text("Send 15 USDT")
    payer.get_by_role("button", name="Send test coins").click()
    expect(payer.locator("h1")).to_have_text("Payment received", timeout=SETTLE_MS)
    payer_context.close()

    # The merchant sees it: the invoice list, the invoice, the wallet, the statistics.
    page.get_by_role("link", name="Invoices").click()
    row = page.locator("tbody tr").first
    expect(row).to_contain_text("paid", timeout=SETTLE_MS)
    expect(row).to_contain_text("15")
    row.get_by_role("link").last.click()
    expect(page.locator("ol.timeline")).to_contain_text("paid")
    assert_accessible(page, "invoice")
    screenshot(page, f"{shot}-invoice")

    page.get_by_role("link", name="Wallets").click()
    expect(page.locator("main")).to_contain_text("USDT")
    expect(page.locator("main")).to_contain_text("test")
    assert re.search(r"\b1[45](\.\d+)?\b", page.locator("main").inner_text()), "the balance"
    screenshot(page, f"{shot}-wallets")

    page.get_by_role("link", name="Statistics").click()
    main = page.locator("main")
    expect(main).to_contain_text("100")  # conversion: one created, one paid
    assert page.locator("figure.chart svg").count() >= 2
    titles = page.locator("figure.chart svg rect title").all_text_contents()
    assert any("USDT" in title for title in titles), titles
    assert_accessible(page, "statistics")
    screenshot(page, f"{shot}-statistics")
    context.close()


def test_the_dashboard_on_a_phone_fits_the_screen(server, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(f"{server.base_url}/dashboard/signup")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    context.close()
