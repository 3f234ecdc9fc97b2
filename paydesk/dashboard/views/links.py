"""Payment links: invoices made from a dashboard form for merchants without a website,
shared as the invoice's payment page URL or its QR code, and switched off by hand."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.api.cryptomus.responses import invoice_result
from paydesk.catalogue.models import Service
from paydesk.catalogue.service import OutOfLimits
from paydesk.context import Context
from paydesk.dashboard.pages import project_url, render
from paydesk.dashboard.security import (
    DASHBOARD,
    Visitor,
    context_of,
    project_request,
    signed_form,
)
from paydesk.dashboard.views.wallets import parse_amount, parse_cursor
from paydesk.invoices import service as invoices
from paydesk.invoices.models import Invoice
from paydesk.invoices.schemas import CoinChoice
from paydesk.invoices.status import InvoiceStatus
from paydesk.links import service as links
from paydesk.merchants.models import Merchant
from paydesk.merchants.service import MerchantPreferences
from paydesk.money import plain
from paydesk.web.forms import Form, see_other
from paydesk.web.qr import qr_svg

router = APIRouter(prefix=f"{DASHBOARD}/projects", include_in_schema=False)

#: Links per page of the list.
PAGE_SIZE = 50
DEFAULT_CURRENCY = "USD"
DEFAULT_LIFETIME = 3600

#: How the dashboard names an invoice's status (the badge's class is the status itself).
STATUS_LABELS = {
    InvoiceStatus.CHECK: "waiting for payment",
    InvoiceStatus.PROCESS: "waiting for payment",
    InvoiceStatus.CONFIRM_CHECK: "confirming",
    InvoiceStatus.WRONG_AMOUNT_WAITING: "underpaid, waiting",
    InvoiceStatus.PAID: "paid",
    InvoiceStatus.PAID_OVER: "paid (over)",
    InvoiceStatus.WRONG_AMOUNT: "underpaid",
    InvoiceStatus.CANCEL: "expired or cancelled",
    InvoiceStatus.FAIL: "failed",
    InvoiceStatus.SYSTEM_FAIL: "failed",
    InvoiceStatus.REFUND_PROCESS: "refunding",
    InvoiceStatus.REFUND_FAIL: "refund failed",
    InvoiceStatus.REFUND_PAID: "refunded",
    InvoiceStatus.LOCKED: "held for review",
}


def lifetime_label(seconds: int) -> str:
    """1800 → "30 minutes", 3600 → "1 hour", 10800 → "3 hours"."""
    if seconds % 3600:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = seconds // 3600
    return f"{hours} hour{'s' if hours != 1 else ''}"


LIFETIME_CHOICES = [(seconds, lifetime_label(seconds)) for seconds in links.LIFETIMES]


def payment_url(context: Context, invoice: Invoice) -> str:
    """The link itself: the invoice's payment page, built by the API's own invoice
    result so that the dashboard and the API can never hand out different URLs."""
    return invoice_result(invoice, context.catalogue, context.settings.base_url).url


def offered_services(context: Context) -> list[Service]:
    """The coins a link may be limited to: those served on this server."""
    return [s for s in context.catalogue.services if context.addresses.serves(s.network)]


@dataclass(frozen=True, slots=True)
class LinkForm:
    """The form as typed, to show it again with a refusal."""

    amount: str = ""
    currency: str = DEFAULT_CURRENCY
    description: str = ""
    lifetime: str = str(DEFAULT_LIFETIME)
    coins: frozenset[str] = field(default_factory=frozenset)
    url_return: str = ""

    @classmethod
    def read(cls, form: Form) -> LinkForm:
        return cls(
            amount=form.get_one("amount").strip()[:64],
            currency=form.get_one("currency").strip().upper()[:16],
            description=form.get_one("description"),
            lifetime=form.get_one("lifetime").strip()[:8],
            coins=frozenset(form.get("coin", [])),
            url_return=form.get_one("url_return").strip(),
        )


@dataclass(frozen=True, slots=True)
class LinkLine:
    """A link as the list and the link's page show it."""

    uuid: uuid.UUID
    page: str
    url: str
    amount: str
    currency: str
    description: str | None
    status: str
    status_label: str
    created_at: datetime
    expires_at: datetime
    disabled_at: datetime | None
    #: Whether a payment can still be stopped (nothing is on its way).
    can_disable: bool


def _line(context: Context, project: Merchant, row: links.LinkRow) -> LinkLine:
    invoice, link = row.invoice, row.link
    status = InvoiceStatus(invoice.status)
    return LinkLine(
        uuid=link.uuid,
        page=project_url(project, f"/links/{link.uuid}"),
        url=payment_url(context, invoice),
        amount=plain(invoice.amount),
        currency=invoice.currency,
        description=link.description,
        status=status.value,
        status_label=STATUS_LABELS.get(status, status.value),
        created_at=link.created_at,
        expires_at=invoice.expired_at,
        disabled_at=link.disabled_at,
        can_disable=link.disabled_at is None and status in links.DISABLEABLE,
    )


async def _list_page(
    request: Request,
    session: AsyncSession,
    current: Visitor,
    project: Merchant,
    *,
    before: int | None = None,
    form: LinkForm | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = context_of(request)
    rows = await links.list_links(session, project.id, limit=PAGE_SIZE + 1, before=before)
    older = rows[PAGE_SIZE - 1].link.id if len(rows) > PAGE_SIZE else None
    catalogue = context.catalogue
    codes = catalogue.codes
    return render(
        request, "links.html", current, project=project, section="links",
        form=form or LinkForm(), lines=[_line(context, project, row) for row in rows[:PAGE_SIZE]],
        older=older, first_page=before is None,
        fiat=[code for code in codes if not catalogue.is_crypto(code)],
        crypto=[code for code in codes if catalogue.is_crypto(code)],
        lifetimes=LIFETIME_CHOICES, services=offered_services(context),
        limited=project.enabled_services is not None,
        error=error, status_code=status_code,
    )  # fmt: skip


@router.get("/{merchant_id}/links")
async def links_page(request: Request, merchant_id: str) -> Response:
    async with project_request(request, merchant_id) as (_context, session, current, project):
        before = parse_cursor(request.query_params.get("before"))
        return await _list_page(request, session, current, project, before=before)


@router.post("/{merchant_id}/links")
async def create_link(request: Request, merchant_id: str) -> Response:
    """Make the link's invoice with the project's preferences (default callback URL, who
    pays the commission, its coins). In a savepoint: a refusal leaves nothing behind
    (not even a claimed address) while the form is answered from the same transaction."""
    async with project_request(request, merchant_id) as (context, session, current, project):
        form = LinkForm.read(await signed_form(request, current))
        amount = parse_amount(form.amount)
        offered = {f"{s.currency}/{s.network}": s for s in offered_services(context)}
        created: links.LinkRow | None = None
        error = None
        if amount is None:
            error = "Enter a positive amount in digits, with a point before any decimals (19.99)."
        elif not form.coins <= offered.keys():
            error = "Choose among the offered coins."
        else:
            lifetime = form.lifetime
            coins = tuple(
                CoinChoice(offered[key].currency, offered[key].network)
                for key in sorted(form.coins)
            )
            link_request = links.LinkRequest(
                amount=amount,
                currency=form.currency,
                description=form.description,
                lifetime=int(lifetime) if lifetime.isascii() and lifetime.isdigit() else 0,
                coins=coins,
                url_return=form.url_return or None,
            )
            try:
                async with session.begin_nested():
                    created = await links.create_link(
                        session, context.invoices, project.id, MerchantPreferences.of(project),
                        link_request,
                    )  # fmt: skip
            except (links.LinkError, invoices.InvoiceError) as refused:
                error = _refusal(refused, form)
        if created is None:
            return await _list_page(request, session, current, project, form=form, error=error,
                                    status_code=422)  # fmt: skip
    return see_other(project_url(project, f"/links/{created.link.uuid}?done=link-created"))


def _refusal(refused: Exception, form: LinkForm) -> str:
    """The invoice service's refusals in the dashboard's words."""
    if isinstance(refused, links.LinkError):
        return str(refused)
    if isinstance(refused, OutOfLimits):
        word = "smallest" if refused.below else "largest"
        return f"The {word} amount a payer can send is {plain(refused.limit)} {refused.currency}."
    if isinstance(refused, invoices.CurrencyNotFound):
        return "Choose one of the offered currencies."
    if isinstance(refused, invoices.NetworkNotFound | invoices.ServiceUnavailable):
        return (
            f"No coin this link allows can take {form.currency} payments now: check the "
            "chosen coins and the project's settings."
        )
    if isinstance(refused, invoices.ConversionFailed):
        return f"No exchange rate for {form.currency} is available now. Try again later."
    return "The payment link could not be made."


async def _link_row(session: AsyncSession, project: Merchant, link_id: str) -> links.LinkRow:
    try:
        link_uuid = uuid.UUID(link_id)
    except ValueError:
        raise HTTPException(404, "Not found") from None
    row = await links.find_link(session, project.id, link_uuid)
    if row is None:
        raise HTTPException(404, "Not found")
    return row


def _link_page(
    request: Request,
    current: Visitor,
    project: Merchant,
    row: links.LinkRow,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = context_of(request)
    line = _line(context, project, row)
    # segno's own markup: the URL is drawn as modules, never written as text.
    qr = Markup(qr_svg(line.url, title="QR code of the payment link"))  # noqa: S704
    return render(
        request, "link.html", current, project=project, section="links", line=line, qr=qr,
        lifetime=lifetime_label(row.invoice.lifetime), error=error, status_code=status_code,
    )  # fmt: skip


@router.get("/{merchant_id}/links/{link_id}")
async def link_page(request: Request, merchant_id: str, link_id: str) -> Response:
    async with project_request(request, merchant_id) as (_context, session, current, project):
        row = await _link_row(session, project, link_id)
        return _link_page(request, current, project, row)


@router.post("/{merchant_id}/links/{link_id}/disable")
async def disable_link(request: Request, merchant_id: str, link_id: str) -> Response:
    """Cancel the link's invoice (the shop is told, as for an expiry). Refused once a
    payment is under way: the service checks that before it writes (the one thing that
    may precede it is the expiry of an invoice whose time is up, which any reader does)."""
    async with project_request(request, merchant_id) as (context, session, current, project):
        await signed_form(request, current)
        row = await _link_row(session, project, link_id)
        try:
            disabled = await links.disable_link(session, context.invoices, project.id,
                                                row.link.uuid)  # fmt: skip
        except links.LinkError as refused:
            return _link_page(request, current, project, row, error=str(refused),
                              status_code=422)  # fmt: skip
        if disabled is None:
            raise HTTPException(404, "Not found")
    return see_other(project_url(project, f"/links/{row.link.uuid}?done=link-disabled"))
