"""Making, listing and disabling payment links. A link is an ordinary invoice (same
pricing, payment page, ledger and webhooks) with the merchant's description beside it."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.db import utcnow
from paydesk.invoices.models import Invoice
from paydesk.invoices.schemas import CoinChoice, InvoiceDraft
from paydesk.invoices.service import InvoiceService
from paydesk.invoices.status import InvoiceStatus
from paydesk.links.models import PaymentLink
from paydesk.merchants.service import MerchantPreferences

#: A link's lifetime choices, in seconds (the API allows 5 minutes to 12 hours).
LIFETIMES = (1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600)
#: Statuses in which a link may still be switched off: nothing is on its way.
DISABLEABLE = frozenset({InvoiceStatus.CHECK})


class LinkError(ValueError):
    """A refusal shown on the form as it is."""


@dataclass(frozen=True, slots=True)
class LinkRequest:
    amount: Decimal
    currency: str
    description: str | None
    lifetime: int
    #: The coins the payer may choose from; empty: all the merchant's enabled coins.
    coins: tuple[CoinChoice, ...] = ()
    url_return: str | None = None


@dataclass(frozen=True, slots=True)
class LinkRow:
    link: PaymentLink
    invoice: Invoice


async def create_link(
    session: AsyncSession,
    invoices: InvoiceService,
    merchant_id: uuid.UUID,
    preferences: MerchantPreferences,
    request: LinkRequest,
) -> LinkRow:
    """Create the invoice and its link in the caller's transaction. Refusals of the
    invoice service (unknown currency, amount out of limits…) propagate unchanged."""
    if request.lifetime not in LIFETIMES:
        raise LinkError("Choose one of the offered lifetimes.")
    description = (request.description or "").strip() or None
    if description and len(description) > 255:
        raise LinkError("A description has at most 255 characters.")
    code = request.currency.upper()
    if (request.coins and invoices.catalogue.is_crypto(code)
            and all(coin.currency != code for coin in request.coins)):  # fmt: skip
        # A coin's invoice is paid in that coin: a list without it would be ignored.
        raise LinkError(f"A link in {code} is paid in {code}: tick {code}, or no coin at all.")
    url_return = (request.url_return or "").strip() or None
    if url_return is not None and not _web_url(url_return):
        raise LinkError("The return URL is a web address (https://…) of at most 255 characters.")
    draft = InvoiceDraft(
        amount=request.amount,
        currency=code,
        order_id=f"link-{secrets.token_hex(8)}",
        lifetime=request.lifetime,
        currencies=list(request.coins) or None,
        url_return=url_return,
        additional_data=description,
    )
    draft = preferences.apply(draft)
    created = await invoices.create(session, merchant_id, draft)
    link = PaymentLink(
        merchant_id=merchant_id, invoice_id=created.invoice.id, description=description
    )
    session.add(link)
    await session.flush()
    return LinkRow(link, created.invoice)


async def list_links(
    session: AsyncSession, merchant_id: uuid.UUID, *, limit: int = 50, before: int | None = None
) -> list[LinkRow]:
    """The merchant's links, newest first (`before`: the id of the last one shown)."""
    query = (
        select(PaymentLink, Invoice)
        .join(Invoice, Invoice.id == PaymentLink.invoice_id)
        .where(PaymentLink.merchant_id == merchant_id)
        .order_by(PaymentLink.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(PaymentLink.id < before)
    return [LinkRow(link, invoice) for link, invoice in await session.execute(query)]


async def find_link(
    session: AsyncSession, merchant_id: uuid.UUID, link_uuid: uuid.UUID
) -> LinkRow | None:
    """One of the merchant's links; None for another merchant's (the query says whose)."""
    row = (
        await session.execute(
            select(PaymentLink, Invoice)
            .join(Invoice, Invoice.id == PaymentLink.invoice_id)
            .where(PaymentLink.merchant_id == merchant_id, PaymentLink.uuid == link_uuid)
        )
    ).first()
    return LinkRow(row[0], row[1]) if row is not None else None


async def disable_link(
    session: AsyncSession, invoices: InvoiceService, merchant_id: uuid.UUID, link_uuid: uuid.UUID
) -> LinkRow | None:
    """Stop a link from taking payments: its invoice is cancelled (and the shop told, as
    for an expiry). A link whose payment is already under way cannot be switched off; a
    transfer that still arrives later is credited, as after any expiry."""
    row = (
        await session.execute(
            select(PaymentLink, Invoice)
            .join(Invoice, Invoice.id == PaymentLink.invoice_id)
            .where(PaymentLink.merchant_id == merchant_id, PaymentLink.uuid == link_uuid)
            .with_for_update()
        )
    ).first()
    if row is None:
        return None
    link, invoice = row
    if link.disabled_at is not None:
        return LinkRow(link, invoice)
    now = utcnow()
    await invoices.expire_if_due(session, invoice, now)
    status = InvoiceStatus(invoice.status)
    if status in DISABLEABLE:
        invoices.transition(invoice, InvoiceStatus.CANCEL, now)
        invoice.expired_at = now
        await session.flush()
        await invoices.announce(session, invoice)
    elif status is not InvoiceStatus.CANCEL:
        raise LinkError("This link has been paid or a payment is on its way: it stays as it is.")
    link.disabled_at = now
    await session.flush()
    return LinkRow(link, invoice)


async def description_of(session: AsyncSession, invoice_id: int) -> str | None:
    """What the payment page shows the payer about a link's invoice (None: not a link)."""
    return await session.scalar(
        select(PaymentLink.description).where(PaymentLink.invoice_id == invoice_id)
    )


def _web_url(value: str) -> bool:
    """Where the payment page's "Return to the shop" may lead: an http(s) address that
    fits the invoice's column (the page drops any other kind of link anyway)."""
    if len(value) > 255 or any(char.isspace() for char in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
