"""What the dashboard's invoice list and invoice page show, and the page's one action.

Every read is scoped to one merchant in its WHERE clause (never checked after loading), so
another merchant's invoice, deposit or delivery cannot leak through a guessed uuid or a
search. Nothing here writes except `resend_invoice_webhook`; in particular reading an
invoice does not expire it (the worker does that), so a read needs no write transaction.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.catalogue.service import Catalogue
from paydesk.chains.models import ChainCursor
from paydesk.db import utcnow
from paydesk.deposits.models import Deposit
from paydesk.invoices.models import Invoice
from paydesk.invoices.status import InvoiceStatus
from paydesk.webhooks import service as webhooks
from paydesk.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEvent

#: The statuses a list can be filtered by: the invoice vocabulary, nothing else.
STATUSES: frozenset[str] = frozenset(status.value for status in InvoiceStatus)
#: No searched column (order_id, address, txid) is longer.
MAX_QUERY_LENGTH = 128
#: `Invoice.currency` / `payer_currency` are at most this long.
MAX_CURRENCY_LENGTH = 16
#: "YYYY-MM-DD".
_DATE_LENGTH = 10
#: How much of a query-string value is looked at.
_READ_LENGTH = 4 * MAX_QUERY_LENGTH
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
#: Bounds the OFFSET a page number turns into (a huge one overflows the database's int).
MAX_PAGE = 100_000
#: Deliveries shown on an invoice's page, newest first.
MAX_DELIVERIES = 20


# --------------------------------------------------------------------------- the list
@dataclass(frozen=True)
class InvoiceFilter:
    """What the invoice list is narrowed to; every field None means "any".

    Built directly, the values are trusted; from a query string, use `from_query`."""

    status: str | None = None
    #: The invoice's own currency or the one the payer pays in.
    currency: str | None = None
    #: UTC days of `created_at`, both inclusive.
    since: date | None = None
    until: date | None = None
    #: An invoice uuid, an order_id (exact or its beginning), a deposit address, or the
    #: hash of a transaction that paid the invoice.
    query: str | None = None

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> InvoiceFilter:
        """The filter a query string asks for. Values come from anyone's browser: one
        that does not parse (an unknown status, a bad date) is ignored rather than
        refused, so a stale or edited link still shows a list; lengths are capped."""
        status = _text(params, "status").lower()
        currency = _text(params, "currency").upper()
        query = _text(params, "q") or _text(params, "query")
        return cls(
            status=status if status in STATUSES else None,
            currency=currency if _is_code(currency) else None,
            since=_date(_text(params, "since")),
            until=_date(_text(params, "until")),
            query=query[:MAX_QUERY_LENGTH].strip() or None,
        )

    @property
    def active(self) -> bool:
        """Whether anything narrows the list (the page offers to clear it)."""
        return any(
            value is not None
            for value in (self.status, self.currency, self.since, self.until, self.query)
        )


@dataclass(frozen=True, slots=True)
class InvoicePage:
    items: list[Invoice]
    page: int
    per_page: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.page > 1


async def search_invoices(
    session: AsyncSession,
    merchant_id: uuid.UUID,
    filters: InvoiceFilter,
    *,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
) -> InvoicePage:
    """One page of the merchant's invoices matching `filters`, newest first.

    Numbered pages (OFFSET), unlike the API's keyset cursors in `paydesk.pagination`: a
    person pages through a few screens and wants to jump to one, and the order is by
    creation time, which the id-only cursors there do not follow. One row more than the
    page is read to know whether another page follows, so no COUNT runs."""
    page = min(max(page, 1), MAX_PAGE)
    per_page = min(max(per_page, 1), MAX_PER_PAGE)
    stmt = select(Invoice).where(Invoice.merchant_id == merchant_id)
    if filters.status is not None:
        stmt = stmt.where(Invoice.status == filters.status)
    if filters.currency is not None:
        code = filters.currency.upper()
        stmt = stmt.where(or_(Invoice.currency == code, Invoice.payer_currency == code))
    if filters.since is not None:
        stmt = stmt.where(Invoice.created_at >= _start_of(filters.since))
    if filters.until is not None and filters.until < date.max:
        stmt = stmt.where(Invoice.created_at < _start_of(filters.until + timedelta(days=1)))
    if filters.query:
        stmt = stmt.where(_matching(merchant_id, filters.query))
    stmt = (
        stmt.order_by(Invoice.created_at.desc(), Invoice.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page + 1)
    )
    rows = list(await session.scalars(stmt))
    return InvoicePage(rows[:per_page], page, per_page, has_next=len(rows) > per_page)


def _matching(merchant_id: uuid.UUID, query: str) -> ColumnElement[bool]:
    """The search box: whatever the merchant pasted, matched against every identifier an
    invoice is known by. The txid lookup is the one `InvoiceService.find_for_resend`
    does (the invoice's own txid, or any deposit that paid it), kept to the merchant's
    deposits."""
    paid_by = select(Deposit.invoice_id).where(
        Deposit.merchant_id == merchant_id,
        Deposit.txid == query,
        Deposit.invoice_id.is_not(None),
    )
    conditions: list[ColumnElement[bool]] = [
        # A prefix by comparing the beginning, not LIKE: SQLite's LIKE ignores case and
        # PostgreSQL's does not, and this must find the same invoices on both.
        func.substr(Invoice.order_id, 1, len(query)) == query,  # equal is a prefix too
        Invoice.address == query,
        Invoice.txid == query,
        Invoice.id.in_(paid_by),
    ]
    as_uuid = _as_uuid(query)
    if as_uuid is not None:
        conditions.append(Invoice.uuid == as_uuid)
    return or_(*conditions)


# --------------------------------------------------------------------------- one invoice
@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    status: str


@dataclass(frozen=True, slots=True)
class Transfer:
    """One deposit that paid (or is paying) the invoice."""

    network: str
    txid: str
    output_index: int
    amount: Decimal
    currency: str
    from_address: str | None
    #: seen, credited, reversed, orphaned (`paydesk.deposits.service`).
    status: str
    #: Null while the transfer is only in the mempool.
    block_height: int | None
    #: Blocks so far as the network's watcher read them (None in the mempool, or before
    #: the watcher has a position), against what the network needs to credit it.
    confirmations: int | None
    confirmations_required: int | None
    created_at: datetime
    credited_at: datetime | None
    reversed_at: datetime | None
    #: The transaction on a public explorer; None on the devnet or an unknown network.
    explorer_url: str | None


@dataclass(frozen=True, slots=True)
class AttemptView:
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """One webhook delivery of the invoice and the log of its attempts."""

    id: int
    url: str
    #: pending, delivered, dead
    status: str
    #: event, resend, retry
    reason: str
    #: The invoice status the delivered event carried.
    event_status: str | None
    attempt_count: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    #: Oldest first.
    attempts: list[AttemptView]


@dataclass(frozen=True, slots=True)
class InvoiceDetail:
    invoice: Invoice
    #: Creation first, then each status the invoice moved to, oldest first.
    timeline: list[TimelineEntry]
    #: Oldest first.
    transfers: list[Transfer]
    #: Newest first, at most `MAX_DELIVERIES`.
    deliveries: list[DeliveryView]


async def invoice_detail(
    session: AsyncSession,
    merchant_id: uuid.UUID,
    invoice_uuid: uuid.UUID | str,
    catalogue: Catalogue,
) -> InvoiceDetail | None:
    """Everything the invoice page shows; None when the merchant has no such invoice
    (someone else's is indistinguishable from none: the page answers 404 for both)."""
    invoice = await _merchants_invoice(session, merchant_id, invoice_uuid)
    if invoice is None:
        return None
    return InvoiceDetail(
        invoice=invoice,
        timeline=await _timeline(session, invoice),
        transfers=await _transfers(session, invoice, catalogue),
        deliveries=await _deliveries(session, invoice),
    )


async def _timeline(session: AsyncSession, invoice: Invoice) -> list[TimelineEntry]:
    """Status changes are not stored as such; each one recorded an `invoice.status`
    webhook event in its own transaction (`InvoiceService.announce`), whether or not the
    invoice has a callback URL, so those events are the invoice's history. Two events
    with the same status in a row (a top-up that left it waiting) are one step."""
    rows = await session.execute(
        select(WebhookEvent.created_at, WebhookEvent.payload["status"].as_string())
        .where(
            WebhookEvent.merchant_id == invoice.merchant_id,
            WebhookEvent.subject_uuid == invoice.uuid,
            WebhookEvent.topic == webhooks.INVOICE_STATUS,
        )
        .order_by(WebhookEvent.id)
    )
    timeline = [TimelineEntry(invoice.created_at, InvoiceStatus.CHECK.value)]
    for at, status in rows:
        if status and status != timeline[-1].status:
            timeline.append(TimelineEntry(at, status))
    return timeline


async def _transfers(
    session: AsyncSession, invoice: Invoice, catalogue: Catalogue
) -> list[Transfer]:
    deposits = list(
        await session.scalars(
            select(Deposit)
            .where(Deposit.merchant_id == invoice.merchant_id, Deposit.invoice_id == invoice.id)
            .order_by(Deposit.created_at, Deposit.id)
        )
    )
    mined = {deposit.network for deposit in deposits if deposit.block_height is not None}
    tips: dict[str, int] = {}
    if mined:
        tips = {
            network: height
            for network, height in await session.execute(
                select(ChainCursor.network, ChainCursor.height).where(
                    ChainCursor.network.in_(mined)
                )
            )
        }
    transfers = []
    for deposit in deposits:
        network = catalogue.network(deposit.network)
        tip = tips.get(deposit.network)
        confirmations = None
        if deposit.block_height is not None and tip is not None:
            confirmations = max(tip - deposit.block_height + 1, 0)
        transfers.append(
            Transfer(
                network=deposit.network,
                txid=deposit.txid,
                output_index=deposit.output_index,
                amount=deposit.amount,
                currency=deposit.currency,
                from_address=deposit.from_address,
                status=deposit.status,
                block_height=deposit.block_height,
                confirmations=confirmations,
                confirmations_required=network.confirmations if network else None,
                created_at=deposit.created_at,
                credited_at=deposit.credited_at,
                reversed_at=deposit.reversed_at,
                explorer_url=network.tx_url(deposit.txid) if network else None,
            )
        )
    return transfers


async def _deliveries(session: AsyncSession, invoice: Invoice) -> list[DeliveryView]:
    """The newest deliveries with their events' statuses, then all their attempts in a
    second query: two queries however many deliveries there are."""
    rows = (
        await session.execute(
            select(WebhookDelivery, WebhookEvent.payload["status"].as_string())
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .where(
                WebhookDelivery.merchant_id == invoice.merchant_id,
                WebhookDelivery.subject_uuid == invoice.uuid,
            )
            .order_by(WebhookDelivery.id.desc())
            .limit(MAX_DELIVERIES)
        )
    ).all()
    attempts: defaultdict[int, list[AttemptView]] = defaultdict(list)
    if rows:
        for attempt in await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_([delivery.id for delivery, _ in rows]))
            .order_by(WebhookAttempt.attempted_at, WebhookAttempt.id)
        ):
            attempts[attempt.delivery_id].append(
                AttemptView(
                    attempted_at=attempt.attempted_at,
                    status_code=attempt.status_code,
                    latency_ms=attempt.latency_ms,
                    error=attempt.error,
                )
            )
    return [
        DeliveryView(
            id=delivery.id,
            url=delivery.url,
            status=delivery.status,
            reason=delivery.reason,
            event_status=event_status,
            attempt_count=delivery.attempts,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            next_attempt_at=delivery.next_attempt_at,
            delivered_at=delivery.delivered_at,
            attempts=attempts.get(delivery.id, []),
        )
        for delivery, event_status in rows
    ]


# --------------------------------------------------------------------------- the action
async def resend_invoice_webhook(
    session: AsyncSession, merchant_id: uuid.UUID, invoice_uuid: uuid.UUID | str
) -> bool:
    """Queue the invoice's latest webhook again, to the address it was meant for (a new
    pending delivery with reason "resend"). False when there is nothing to send: not the
    merchant's invoice, no callback URL, or no event yet.

    Unlike the API's resend, any status may be resent: the merchant is debugging its
    own receiver. The API's per-invoice limit still applies: past it this raises
    `paydesk.webhooks.service.TooManyResends`, which the page reports."""
    invoice = await _merchants_invoice(session, merchant_id, invoice_uuid)
    if invoice is None or not invoice.url_callback:
        return False
    try:
        await webhooks.resend_latest(session, invoice.uuid, utcnow())
    except webhooks.NothingToResend:
        return False
    return True


# --------------------------------------------------------------------------- helpers
async def _merchants_invoice(
    session: AsyncSession, merchant_id: uuid.UUID, invoice_uuid: uuid.UUID | str
) -> Invoice | None:
    parsed = invoice_uuid if isinstance(invoice_uuid, uuid.UUID) else _as_uuid(invoice_uuid)
    if parsed is None:
        return None
    return await session.scalar(
        select(Invoice).where(Invoice.merchant_id == merchant_id, Invoice.uuid == parsed)
    )


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip())
    except (ValueError, AttributeError):
        return None


def _text(params: Mapping[str, str], key: str) -> str:
    """A query-string value, stripped and without control characters (PostgreSQL refuses
    a NUL in text). Only a bounded start of it is read; a value that must match exactly
    (a status, a code, a date) and is longer than that fails to match, never gets cut
    into one that does."""
    value = params.get(key)
    if not isinstance(value, str):
        return ""
    kept = (ch for ch in value[:_READ_LENGTH] if unicodedata.category(ch) not in ("Cc", "Cs"))
    return "".join(kept).strip()


def _is_code(value: str) -> bool:
    return 0 < len(value) <= MAX_CURRENCY_LENGTH and value.isascii() and value.isalnum()


def _date(value: str) -> date | None:
    if len(value) != _DATE_LENGTH:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)
