"""Payment links over HTTP, on both databases: made with the project's preferences, shown
with a QR code a real decoder reads back, listed, disabled (the shop told by webhook),
kept from other users, and described to the payer on the payment page."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
import zxingcpp
from PIL import Image, ImageDraw
from sqlalchemy import func, select

from paydesk.context import Context
from paydesk.dashboard.views.links import lifetime_label
from paydesk.db import utcnow
from paydesk.invoices.models import Invoice
from paydesk.invoices.schemas import InvoiceDraft
from paydesk.links import service as links
from paydesk.links.models import PaymentLink
from paydesk.merchants.models import Merchant
from paydesk.merchants.service import ApiAccess, MerchantPreferences, create_merchant
from paydesk.webhooks.models import WebhookEvent
from tests.dashboard.conftest import Dashboard, make_user
from tests.dashboard.test_wallets import table_rows
from tests.devnet import mine

CALLBACK = "https://shop.example/paydesk/hook"
_PATH = re.compile(r"<path\b[^>]*>")
_SEGMENT = re.compile(r"([MmHh])\s*(-?[\d.]+)(?:[\s,]+(-?[\d.]+))?")


def qr_text(svg: str, scale: int = 8) -> str:
    """What a real QR decoder reads in the page's inline SVG: segno draws the dark
    modules as horizontal strokes one module high (`M x y.5 h n m dx dy …`); they are
    painted onto a white picture and handed to ZXing."""
    viewbox = re.search(r'viewBox="0 0 (\d+) (\d+)"', svg)
    assert viewbox, "no viewBox"
    width, height = int(viewbox.group(1)), int(viewbox.group(2))
    [dark] = [tag for tag in _PATH.findall(svg) if 'stroke="#000"' in tag]
    d = re.search(r'\bd="([^"]+)"', dark)
    assert d is not None
    picture = Image.new("L", (width * scale, height * scale), 255)
    draw = ImageDraw.Draw(picture)
    x = y = 0.0
    for command, first, second in _SEGMENT.findall(d.group(1)):
        if command == "M":
            x, y = float(first), float(second)
        elif command == "m":
            x, y = x + float(first), y + float(second)
        elif command == "H":
            x = float(first)
        else:  # "h": a run of dark modules on the row y - 0.5
            end = x + float(first)
            top = int((y - 0.5) * scale)
            draw.rectangle([int(x * scale), top, int(end * scale) - 1, top + scale - 1], fill=0)
            x = end
    [found] = zxingcpp.read_barcodes(picture)
    assert found.format == zxingcpp.BarcodeFormat.QRCode
    return found.text


async def save_settings(dashboard: Dashboard, **fields: Any) -> None:
    form = {
        "default_callback_url": CALLBACK, "commission_payer": "payer",
        "service": ["USDT/devnet", "USDC/devnet", "BTC/devnet"], "notification_emails": "",
        **fields,
    }  # fmt: skip
    saved = await dashboard.post(f"{dashboard.base}/settings", form)
    assert saved.status_code == 303, saved.text


async def create(dashboard: Dashboard, **fields: Any):
    form = {"amount": "19.99", "currency": "USD", "description": "Two pairs of wool socks",
            "lifetime": "3600", **fields}  # fmt: skip
    return await dashboard.post(f"{dashboard.base}/links", form)


async def created_link(
    dashboard: Dashboard, context: Context, **fields: Any
) -> tuple[str, PaymentLink, Invoice]:
    """Create through the form; the link's page URL, the link and its invoice."""
    made = await create(dashboard, **fields)
    assert made.status_code == 303, made.text
    location = made.headers["location"]
    found = re.fullmatch(rf"{re.escape(dashboard.base)}/links/([0-9a-f-]+)\?done=link-created",
                         location)  # fmt: skip
    assert found, location
    return location, *await link_and_invoice(context, uuid.UUID(found.group(1)))


async def link_and_invoice(context: Context, link_uuid: uuid.UUID) -> tuple[PaymentLink, Invoice]:
    async with context.db.reader() as session:
        row = (
            await session.execute(
                select(PaymentLink, Invoice)
                .join(Invoice, Invoice.id == PaymentLink.invoice_id)
                .where(PaymentLink.uuid == link_uuid)
            )
        ).one()
    return row[0], row[1]


async def count(context: Context, model: type) -> int:
    async with context.db.reader() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def pay(context: Context, invoice: Invoice) -> None:
    await mine(context)  # the devnet's genesis block
    async with context.db.transaction() as session:
        locked = await context.invoices.get_for_update(session, invoice.uuid)
        await context.devnet.pay_invoice(session, locked, context.invoices)
    await mine(context)


# --------------------------------------------------------------------------- creating
def test_lifetimes_read_as_words():
    assert [lifetime_label(s) for s in links.LIFETIMES] == [
        "30 minutes", "1 hour", "3 hours", "6 hours", "12 hours"
    ]  # fmt: skip


async def test_a_link_is_an_invoice_with_the_projects_preferences(dashboard, context):
    await save_settings(dashboard)
    form = await dashboard.get(f"{dashboard.base}/links")
    assert form.status_code == 200
    assert '<option value="USD" selected>' in form.text
    assert '<option value="3600" selected>1 hour</option>' in form.text
    assert '<option value="1800">30 minutes</option>' in form.text
    assert 'value="USDT/devnet"' in form.text and 'value="BTC" ' not in form.text

    location, link, invoice = await created_link(
        dashboard, context, amount="19.99", currency="usd", lifetime="10800",
        coin=["USDT/devnet", "USDC/devnet"], url_return="https://shop.example/thanks",
    )  # fmt: skip
    assert (invoice.amount, invoice.currency, invoice.lifetime) == (Decimal("19.99"), "USD", 10800)
    assert invoice.merchant_id == dashboard.project.merchant_id
    assert sorted(c["currency"] for c in invoice.currencies) == ["USDC", "USDT"]
    assert {c["network"] for c in invoice.currencies} == {"devnet"}
    assert invoice.url_callback == CALLBACK  # the project's default
    assert invoice.subtract == 100  # the payer pays the commission, as set
    assert invoice.url_return == "https://shop.example/thanks"
    assert invoice.status == "check" and invoice.address is None
    assert (invoice.expired_at - invoice.created_at).total_seconds() == 10800
    assert link.description == "Two pairs of wool socks" and link.disabled_at is None

    page = await dashboard.get(location)
    assert page.status_code == 200 and "Payment link created." in page.text
    url = f"{context.settings.base_url}/pay/{invoice.uuid}"
    assert f'data-testid="link-url"><a href="{url}"' in page.text
    assert "19.99 USD" in page.text and "Two pairs of wool socks" in page.text
    assert "3 hours" in page.text and 'data-testid="link-status">waiting for payment' in page.text
    svg = page.text.split('data-testid="link-qr">')[1].split("</figure>")[0]
    assert svg.startswith("<svg ") and "<title>QR code of the payment link</title>" in svg
    assert qr_text(svg) == url
    assert "Disable</button>" in page.text

    # The API's view of the same invoice hands out the same URL.
    listed = await dashboard.get(f"{dashboard.base}/links")
    [row] = table_rows(listed.text, "links")
    assert row[1:4] == ["19.99 USD", "Two pairs of wool socks", "waiting for payment"]
    assert url in row[4] and f'href="{location.split("?")[0]}"' in listed.text


async def test_no_coin_ticked_means_every_coin_the_project_allows(dashboard, context):
    await save_settings(dashboard, commission_payer="merchant", service=["USDT/devnet"],
                        default_callback_url="")  # fmt: skip
    _, _, invoice = await created_link(dashboard, context, amount="5", currency="USDT")
    assert invoice.currencies == [{"currency": "USDT", "network": "devnet"}]
    assert invoice.url_callback is None and invoice.subtract == 0
    assert invoice.payer_currency == "USDT" and invoice.network == "devnet"
    assert invoice.address is not None and invoice.payer_amount == Decimal("5")
    # Every coin the project still allows (none set): the invoice is open to all.
    await save_settings(dashboard, service=["USDT/devnet", "USDC/devnet", "BTC/devnet",
                                        "ETH/devnet", "LTC/devnet", "TRX/devnet"])  # fmt: skip
    _, _, open_invoice = await created_link(dashboard, context, amount="5", currency="EUR")
    assert open_invoice.currencies is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": "abc"}, "Enter a positive amount"),
        ({"amount": "NaN"}, "Enter a positive amount"),
        ({"amount": "-Infinity"}, "Enter a positive amount"),
        ({"amount": "1e3"}, "Enter a positive amount"),
        ({"amount": "0"}, "Enter a positive amount"),
        ({"amount": "-5"}, "Enter a positive amount"),
        ({"amount": "0.001"}, "The smallest amount a payer can send is 0.01 USD."),
        ({"amount": "2000000", "currency": "USDT"},
         "The largest amount a payer can send is 1000000 USDT."),
        ({"amount": "9" * 30, "currency": "USDT"},
         "The largest amount a payer can send is 1000000 USDT."),
        ({"currency": "XYZ"}, "Choose one of the offered currencies."),
        ({"currency": "DOGE"}, "Choose one of the offered currencies."),
        ({"lifetime": "999"}, "Choose one of the offered lifetimes."),
        ({"lifetime": "abc"}, "Choose one of the offered lifetimes."),
        ({"description": "x" * 256}, "A description has at most 255 characters."),
        ({"url_return": "javascript:alert(1)"}, "The return URL is a web address"),
        ({"url_return": "https://" + "a" * 250 + ".test"}, "The return URL is a web address"),
        ({"coin": ["DOGE/devnet"]}, "Choose among the offered coins."),
        ({"coin": ["USDT/devnet"], "currency": "BTC"},
         "A link in BTC is paid in BTC: tick BTC, or no coin at all."),
    ],
)  # fmt: skip
async def test_refusals_are_shown_on_the_form(dashboard, context, fields, message):
    refused = await create(dashboard, **fields)
    assert refused.status_code == 422
    assert message in refused.text and 'role="alert"' in refused.text
    assert "Two pairs of wool socks" in refused.text  # the form comes back as typed
    assert await count(context, PaymentLink) == 0
    assert await count(context, Invoice) == 0


async def test_a_coin_the_project_switched_off_is_refused(dashboard, context):
    await save_settings(dashboard, service=["BTC/devnet"])
    refused = await create(dashboard, amount="5", currency="USDT")
    assert refused.status_code == 422
    assert "No coin this link allows can take USDT payments now" in refused.text
    assert await count(context, Invoice) == 0
    assert (await create(dashboard, amount="0.001", currency="BTC")).status_code == 303


async def test_forms_need_their_token(dashboard, context):
    fields = {"amount": "5", "currency": "USD", "lifetime": "3600"}
    made = await dashboard.http.post(f"{dashboard.base}/links", data=fields)
    assert made.status_code == 403
    assert await count(context, Invoice) == 0
    location, link, _ = await created_link(dashboard, context)
    stopped = await dashboard.http.post(f"{location.split('?')[0]}/disable", data={})
    assert stopped.status_code == 403
    assert (await link_and_invoice(context, link.uuid))[1].status == "check"


# --------------------------------------------------------------------------- disabling
async def test_disabling_cancels_the_invoice_and_tells_the_shop(dashboard, context):
    await save_settings(dashboard)
    location, link, invoice = await created_link(dashboard, context)
    page_url = location.split("?")[0]
    stopped = await dashboard.post(f"{page_url}/disable")
    assert stopped.status_code == 303
    assert stopped.headers["location"] == f"{page_url}?done=link-disabled"
    link, invoice = await link_and_invoice(context, link.uuid)
    assert invoice.status == "cancel" and invoice.expired_at <= utcnow()
    assert link.disabled_at is not None
    async with context.db.reader() as session:
        events = list(
            await session.scalars(
                select(WebhookEvent).where(WebhookEvent.subject_uuid == invoice.uuid)
            )
        )
    assert [(e.url, e.payload["status"]) for e in events] == [(CALLBACK, "cancel")]

    page = await dashboard.get(stopped.headers["location"])
    assert "Payment link disabled." in page.text
    assert 'class="badge disabled">disabled<' in page.text and "Disable</button>" not in page.text
    listed = await dashboard.get(f"{dashboard.base}/links")
    [row] = table_rows(listed.text, "links")
    assert row[3] == "expired or cancelled disabled"
    # Again: nothing more happens, nothing more is announced.
    assert (await dashboard.post(f"{page_url}/disable")).status_code == 303
    assert await count(context, WebhookEvent) == 1
    # The payer finds an expired invoice.
    pay_page = await dashboard.http.get(f"/pay/{invoice.uuid}?lang=en")
    assert pay_page.status_code == 200 and "This invoice expired" in pay_page.text


async def test_a_paid_link_cannot_be_disabled(dashboard, context):
    location, link, invoice = await created_link(dashboard, context, amount="5", currency="USDT",
                                                 coin=["USDT/devnet"])  # fmt: skip
    await pay(context, invoice)
    assert (await link_and_invoice(context, link.uuid))[1].status == "paid"
    page_url = location.split("?")[0]
    page = await dashboard.get(page_url)
    assert 'data-testid="link-status">paid<' in page.text and "Disable</button>" not in page.text
    refused = await dashboard.post(f"{page_url}/disable")
    assert refused.status_code == 422
    assert "This link has been paid or a payment is on its way" in refused.text
    link, invoice = await link_and_invoice(context, link.uuid)
    assert invoice.status == "paid" and link.disabled_at is None


# --------------------------------------------------------------------------- others
async def test_another_users_links_are_not_found(dashboard, context):
    stranger = await make_user(context, "stranger@else.test")
    async with context.db.transaction() as session:
        theirs = await create_merchant(session, context.vault, name="Not mine", user=stranger,
                                       api_access=ApiAccess.APPROVED)  # fmt: skip
        project = await session.get(Merchant, theirs.merchant_id)
        row = await links.create_link(
            session, context.invoices, theirs.merchant_id, MerchantPreferences.of(project),
            links.LinkRequest(amount=Decimal(7), currency="USD", description="theirs",
                              lifetime=3600),
        )  # fmt: skip
    # Through my project's URL, or theirs: not found either way.
    mine_url = f"{dashboard.base}/links/{row.link.uuid}"
    theirs_url = f"/dashboard/projects/{theirs.merchant_id}/links"
    for url in (
        mine_url,
        f"{theirs_url}/{row.link.uuid}",
        theirs_url,
        f"{dashboard.base}/links/not-a-uuid",
        f"{dashboard.base}/links/{uuid.uuid4()}",
    ):
        assert (await dashboard.get(url)).status_code == 404, url
    for url in (f"{mine_url}/disable", f"{theirs_url}/{row.link.uuid}/disable"):
        assert (await dashboard.post(url)).status_code == 404, url
    assert (await dashboard.post(theirs_url, {"amount": "5", "currency": "USD",
                                          "lifetime": "3600"})).status_code == 404  # fmt: skip
    link, invoice = await link_and_invoice(context, row.link.uuid)
    assert invoice.status == "check" and link.disabled_at is None
    listed = await dashboard.get(f"{dashboard.base}/links")
    assert "theirs" not in listed.text and table_rows(listed.text, "links") == []
    assert await count(context, Invoice) == 1


# --------------------------------------------------------------------------- the payer
async def test_the_payment_page_shows_the_description_escaped(dashboard, context):
    written = '<b>Socks</b> & "wool" <script>alert(1)</script>'
    _, _, invoice = await created_link(dashboard, context, description=written)
    page = await dashboard.http.get(f"/pay/{invoice.uuid}?lang=en")
    assert page.status_code == 200
    shown = re.search(r'data-testid="description">([^<]*)</p>', page.text)
    assert shown is not None
    assert shown.group(1) == (
        "&lt;b&gt;Socks&lt;/b&gt; &amp; &#34;wool&#34; &lt;script&gt;alert(1)&lt;/script&gt;"
    )
    assert "<script>alert(1)" not in page.text
    # In any language: the merchant's own words, not translated.
    french = await dashboard.http.get(f"/pay/{invoice.uuid}?lang=fr")
    assert shown.group(1) in french.text

    # An invoice that is not a link has no description (its additional_data stays private).
    draft = InvoiceDraft(amount=Decimal(3), currency="USD", order_id="api-1",
                         additional_data="internal note")  # fmt: skip
    async with context.db.transaction() as session:
        plain_invoice = (
            await context.invoices.create(session, dashboard.project.merchant_id, draft)
        ).invoice
    other = await dashboard.http.get(f"/pay/{plain_invoice.uuid}?lang=en")
    assert other.status_code == 200
    assert 'data-testid="description"' not in other.text and "internal note" not in other.text
