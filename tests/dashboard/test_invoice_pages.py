"""The invoice list and invoice page as a signed-in merchant sees them, on SQLite and
PostgreSQL: filters and pages through the query string, a devnet payment's history,
transfers and webhook attempts, explorer links for a real network, the resend button and
its limits, and nothing of another account's."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from paydesk.db import utcnow
from paydesk.deposits.service import ObservedTransfer
from paydesk.merchants.service import create_merchant
from paydesk.webhooks.models import WebhookDelivery
from paydesk.webhooks.service import MAX_RESENDS
from tests.dashboard.conftest import Dashboard, make_user
from tests.dashboard.test_invoice_views import ETH_PAYER, at, created_at, new_invoice, send
from tests.devnet import deliver_webhooks, mine

_ROW = re.compile(r"<tr>\s*<td><time[^>]*>[^<]*</time></td>\s*<td class=\"mono\">([^<]*)</td>")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # eth for a network with a public explorer (its node is never called); callbacks to
    # the test receiver on 127.0.0.1.
    return {
        "networks": ["devnet", "eth"],
        "chain_nodes": {"eth": "http://127.0.0.1:9"},
        "callback_allowlist": ["127.0.0.0/8"],
    }


def listed(page: str) -> list[str]:
    """The order ids in the invoice table, top to bottom."""
    return [html.unescape(order) for order in _ROW.findall(page)]


def section(page: str, heading_id: str) -> str:
    """The page's `<section>` titled by the heading with this id."""
    start = page.index(f'aria-labelledby="{heading_id}"')
    return page[start : page.index("</section>", start)]


def link(page: str, rel: str) -> str | None:
    found = re.search(rf'<a rel="{rel}" href="([^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


async def invoices(dashboard: Dashboard, query: str = "") -> str:
    response = await dashboard.get(f"{dashboard.base}/invoices{query}")
    assert response.status_code == 200, response.text
    return response.text


async def delivery_count(context, invoice_uuid: uuid.UUID, reason: str) -> int:
    async with context.db.reader() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(
                    WebhookDelivery.subject_uuid == invoice_uuid, WebhookDelivery.reason == reason
                )
            )
            or 0
        )


# --------------------------------------------------------------------------- the list
async def test_an_empty_list(dashboard):
    page = await invoices(dashboard)
    assert "No invoices yet" in page and "<table" not in page
    assert 'aria-current="page">Invoices</a>' in page
    assert 'placeholder="uuid, order id, address or transaction hash"' in page


async def test_the_list_and_its_filters(dashboard, context):
    me = dashboard.project.merchant_id
    a = await new_invoice(context, me, "order-a", lifetime=7200)
    b = await new_invoice(context, me, "order-b", amount="0.5", currency="ETH", network="eth")
    c = await new_invoice(context, me, "other-c", currency="USD", network=None, lifetime=300)
    await created_at(context, a, at("2024-03-01"))
    await created_at(context, b, at("2024-03-02"))
    await created_at(context, c, at("2024-03-03"))
    async with context.db.transaction() as session:  # c's lifetime ends
        assert await context.invoices.expire_due(session, utcnow() + timedelta(minutes=10)) == 1

    page = await invoices(dashboard)
    assert listed(page) == ["other-c", "order-b", "order-a"]  # newest first
    assert "2024-03-02 12:00:00 UTC" in page
    # Amounts as stored (to each coin's precision), never rounded for display.
    assert "0.50000000 ETH" in page and "10.00000000 USDT" in page and "10.00 USD" in page
    assert '<span class="badge cancel">cancel</span>' in page
    assert f'href="{dashboard.base}/invoices/{a.uuid}"' in page
    assert "not chosen yet" in page  # c was never given a coin
    assert "Clear the filter" not in page and 'rel="next"' not in page

    assert listed(await invoices(dashboard, "?status=cancel")) == ["other-c"]
    chosen = await invoices(dashboard, "?status=check")
    assert listed(chosen) == ["order-b", "order-a"]
    assert '<option value="check" selected>' in chosen and "Clear the filter" in chosen
    by_coin = await invoices(dashboard, "?currency=eth")
    assert listed(by_coin) == ["order-b"] and 'value="ETH"' in by_coin
    one_day = await invoices(dashboard, "?since=2024-03-02&until=2024-03-02")
    assert listed(one_day) == ["order-b"]
    assert 'name="since" value="2024-03-02"' in one_day
    assert listed(await invoices(dashboard, "?since=2024-03-02")) == ["other-c", "order-b"]
    # The search box: an order id's beginning, a uuid, an address.
    assert listed(await invoices(dashboard, "?q=order-")) == ["order-b", "order-a"]
    assert listed(await invoices(dashboard, f"?q={a.uuid}")) == ["order-a"]
    assert listed(await invoices(dashboard, f"?q={b.address}")) == ["order-b"]
    nothing = await invoices(dashboard, "?q=no-such-order")
    assert listed(nothing) == [] and "No invoice matches this filter" in nothing
    # Junk in a link is ignored, never an error.
    junk = await invoices(dashboard, "?status=refunded&since=yesterday&page=abc&currency=%00")
    assert listed(junk) == ["other-c", "order-b", "order-a"]


async def test_a_transfer_hash_finds_the_invoice_it_paid(dashboard, context):
    me = dashboard.project.merchant_id
    await new_invoice(context, me, "unpaid")
    paid = await new_invoice(context, me, "paid")
    await mine(context)
    txid = await send(context, paid.address, "10")
    assert listed(await invoices(dashboard, f"?q={txid}")) == ["paid"]


async def test_pages_keep_the_filter(dashboard, context):
    me = dashboard.project.merchant_id
    for number in range(27):
        await new_invoice(context, me, f"p-{number:02d}", currency="USD", network=None)
    await new_invoice(context, me, "p-usdt")  # filtered out by the currency

    first = await invoices(dashboard, "?currency=usd&q=p-")
    orders = listed(first)
    assert len(orders) == 25 and "p-usdt" not in orders
    assert link(first, "prev") is None
    older = link(first, "next")
    assert older == f"{dashboard.base}/invoices?currency=USD&q=p-&page=2"

    second = await dashboard.get(older)
    assert second.status_code == 200
    rest = listed(second.text)
    assert len(rest) == 2 and not set(rest) & set(orders)
    assert "page 2" in second.text
    assert link(second.text, "next") is None
    assert link(second.text, "prev") == f"{dashboard.base}/invoices?currency=USD&q=p-"

    past = await invoices(dashboard, "?page=9")
    assert listed(past) == [] and "There are no more invoices" in past
    huge = listed(await invoices(dashboard, "?page=" + "9" * 20))  # junk: the first page
    assert len(huge) == 25 and huge[0] == "p-usdt"


# --------------------------------------------------------------------------- one invoice
async def test_a_paid_devnet_invoice(dashboard, context, receiver):
    me = dashboard.project.merchant_id
    invoice = await new_invoice(context, me, "paid-1", url_callback=receiver.url)
    await mine(context)  # the devnet's genesis block
    txid = await send(context, invoice.address, "10")  # in the mempool: confirm_check
    await mine(context)  # credited: paid
    receiver.answers = [500]  # the first delivery fails; the others wait for its retry
    await deliver_webhooks(context)

    response = await dashboard.get(f"{dashboard.base}/invoices/{invoice.uuid}")
    assert response.status_code == 200, response.text
    page = response.text
    assert f'data-testid="invoice-uuid">{invoice.uuid}<' in page
    assert 'data-testid="invoice-status">paid<' in page
    assert "10.000000 USDT on devnet" in page
    assert f'href="/pay/{invoice.uuid}"' in page
    assert 'data-testid="address-link"' not in page  # the devnet has no explorer
    assert invoice.address in page and receiver.url in page

    timeline = section(page, "timeline-title")
    assert re.findall(r'class="badge (\w+)"', timeline) == ["check", "confirm_check", "paid"]
    assert timeline.count(" UTC</time>") == 3

    transfers = section(page, "transfers-title")
    assert f'<span class="mono">{txid}</span>' in transfers  # no link without an explorer
    assert "<a " not in transfers
    assert "10 USDT" in transfers and "<td>1/1</td>" in transfers  # mined in block 1
    assert "<td>1</td>" in transfers and "credited" in transfers

    webhooks = section(page, "webhooks-title")
    assert webhooks.count('<article class="delivery"') == 2
    assert re.findall(r"status <strong>(\w+)</strong>", webhooks) == ["paid", "confirm_check"]
    attempts = re.findall(r"<td>(\d{3}|no answer)</td>\s*<td class=\"num\">(\d+) ms</td>", webhooks)
    assert [status for status, _ in attempts] == ["500"]  # one attempt so far, refused
    assert "Resend the last webhook" in webhooks and 'name="csrf_token"' in webhooks


async def test_a_real_network_links_to_its_explorer(dashboard, context):
    invoice = await new_invoice(context, dashboard.project.merchant_id, "eth-1", network="eth")
    txid = "0x" + "ab" * 32
    async with context.db.transaction() as session:
        await context.deposits.credit(
            session,
            ObservedTransfer("eth", txid, 0, invoice.address, "USDT", Decimal(10),
                             from_address=ETH_PAYER, block_height=10, block_hash="00" * 32),
        )  # fmt: skip
    page = (await dashboard.get(f"{dashboard.base}/invoices/{invoice.uuid}")).text
    assert (
        f'<a class="mono" href="https://etherscan.io/tx/{txid}" rel="noopener noreferrer"'
        f' target="_blank">{txid}</a>'
    ) in page
    assert (
        f'href="https://etherscan.io/address/{invoice.address}" rel="noopener noreferrer"'
        ' target="_blank" data-testid="address-link"'
    ) in page
    transfers = section(page, "transfers-title")
    assert "<td>?/12</td>" in transfers  # no eth watcher ran: the depth is unknown
    assert ETH_PAYER in transfers and "<td>10</td>" in transfers


async def test_resend_the_last_webhook(dashboard, context, receiver):
    me = dashboard.project.merchant_id
    invoice = await new_invoice(context, me, "resend-1", url_callback=receiver.url)
    await mine(context)
    await send(context, invoice.address, "10")
    await mine(context)
    await deliver_webhooks(context)
    url = f"{dashboard.base}/invoices/{invoice.uuid}"
    await dashboard.get(url)

    # Without the form token: refused, nothing queued.
    refused = await dashboard.http.post(f"{url}/resend", data={})
    assert refused.status_code == 403
    forged = await dashboard.http.post(f"{url}/resend", data={"csrf_token": "x" * 43})
    assert forged.status_code == 403
    assert await delivery_count(context, invoice.uuid, "resend") == 0

    done = await dashboard.post(f"{url}/resend")
    assert done.status_code == 303 and done.headers["location"] == f"{url}?done=resent"
    assert await delivery_count(context, invoice.uuid, "resend") == 1
    page = (await dashboard.get(done.headers["location"])).text
    assert "The webhook is queued again." in page
    newest = section(page, "webhooks-title").split('<article class="delivery"')[1]
    assert '<span class="badge pending">pending</span>' in newest
    assert "status <strong>paid</strong>" in newest and "· resend ·" in newest
    assert "0 attempts" in newest

    # The API's per-invoice limit holds on the page too.
    for _ in range(MAX_RESENDS - 1):
        assert (await dashboard.post(f"{url}/resend")).status_code == 303
    over = await dashboard.post(f"{url}/resend")
    assert over.status_code == 422
    assert f"resent {MAX_RESENDS} times, the most allowed" in over.text
    assert f'data-testid="invoice-uuid">{invoice.uuid}<' in over.text  # still the page
    assert await delivery_count(context, invoice.uuid, "resend") == MAX_RESENDS


async def test_nothing_to_resend(dashboard, context):
    silent = await new_invoice(context, dashboard.project.merchant_id, "silent")  # no callback
    url = f"{dashboard.base}/invoices/{silent.uuid}"
    await dashboard.get(url)
    answer = await dashboard.post(f"{url}/resend")
    assert answer.status_code == 422
    assert "There is nothing to resend" in answer.text
    assert "None: this invoice sends no webhook." in answer.text
    assert await delivery_count(context, silent.uuid, "resend") == 0


async def test_another_accounts_invoice_is_not_found(dashboard, context):
    stranger = await make_user(context, "stranger@elsewhere.test")
    async with context.db.transaction() as session:
        theirs = await create_merchant(session, context.vault, name="Elsewhere", user=stranger)
    invoice = await new_invoice(context, theirs.merchant_id, "theirs")
    mine_too = f"{dashboard.base}/invoices/{invoice.uuid}"

    assert (await dashboard.get(mine_too)).status_code == 404
    assert (await dashboard.post(f"{mine_too}/resend")).status_code == 404
    their_project = f"/dashboard/projects/{theirs.merchant_id}/invoices"
    assert (await dashboard.get(their_project)).status_code == 404
    assert (await dashboard.get(f"{their_project}/{invoice.uuid}")).status_code == 404
    assert (await dashboard.get(f"{dashboard.base}/invoices/not-a-uuid")).status_code == 404
    assert (await dashboard.get(f"{dashboard.base}/invoices/{uuid.uuid4()}")).status_code == 404
    page = await invoices(dashboard, f"?q={invoice.uuid}")
    assert listed(page) == [] and "theirs" not in page


async def test_signed_out_visitors_are_sent_to_sign_in(dashboard, context):
    invoice = await new_invoice(context, dashboard.project.merchant_id, "private")
    dashboard.http.cookies.clear()
    for path in ("/invoices", f"/invoices/{invoice.uuid}"):
        answer = await dashboard.http.get(f"{dashboard.base}{path}")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/dashboard/login?next=")
