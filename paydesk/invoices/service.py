"""Creating, finding, listing and expiring invoices.

Creation is idempotent per (merchant, order_id): the unique constraint decides, so two
concurrent creates make one invoice and both callers get it.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from paydesk.catalogue.models import Service
from paydesk.catalogue.service import Catalogue, OutOfLimits
from paydesk.chains.service import (
    CLAIM_ADDRESS,
    RELEASE_ADDRESS,
    AddressBook,
    claim_values,
    release_values,
)
from paydesk.chains.uri import payment_uri
from paydesk.db import Database, StandaloneStatement, utcnow
from paydesk.deposits.models import Deposit
from paydesk.discounts.service import DiscountBook
from paydesk.invoices import pricing
from paydesk.invoices.models import Invoice
from paydesk.invoices.schemas import CoinChoice, InvoiceDraft
from paydesk.invoices.status import (
    ON_EXPIRY,
    SETTLED_BY_DEPOSITS,
    InvoiceStatus,
    check_transition,
    is_final,
)
from paydesk.money import MONEY, percent_of, quantum, round_half_up
from paydesk.pagination import Cursor, HistoryFilter, Page, history_page
from paydesk.rates.service import RatesService, RateUnavailable
from paydesk.webhooks import service as webhooks

ADDRESS_PURPOSE = "invoice"


class InvoiceError(Exception):
    """A request the invoice service refuses; dialects turn each kind into their message."""


class CurrencyNotFound(InvoiceError):
    pass


class NetworkNotFound(InvoiceError):
    pass


class ServiceUnavailable(InvoiceError):
    """The coin exists on the network but is switched off there."""


class ToCurrencyNotFound(InvoiceError):
    pass


class ConversionFailed(InvoiceError):
    pass


class InvoiceNotFound(InvoiceError):
    pass


class AmountOutOfRange(OutOfLimits, InvoiceError):
    pass


class CoinAlreadyChosen(InvoiceError):
    pass


class InvoiceNotPayable(InvoiceError):
    """Expired, paid or otherwise past the point where a payer can act on it."""


class OptionNotOffered(InvoiceError):
    """A coin and network the invoice does not accept."""


@dataclass(frozen=True, slots=True)
class CreateResult:
    invoice: Invoice
    created: bool


@dataclass(frozen=True, slots=True)
class OptionQuote:
    """A coin and network the payer may pick, with its price now (None: cannot be
    priced now, or outside the coin's limits)."""

    service: Service
    payer_amount: Decimal | None


@dataclass(frozen=True, slots=True)
class _Priced:
    quote: pricing.Quote
    discount_percent: int | None
    source: str | None


@dataclass(frozen=True, slots=True)
class _Resolved:
    """The payer side of a draft, checked against the catalogue."""

    payer_currency: str | None
    network: str | None
    service: Service | None


class InvoiceService:
    def __init__(
        self,
        catalogue: Catalogue,
        rates: RatesService,
        addresses: AddressBook,
        discounts: DiscountBook,
    ) -> None:
        self.catalogue = catalogue
        self.rates = rates
        self.addresses = addresses
        self.discounts = discounts
        #: Called with every status change, in its transaction (a checkout payment paid
        #: through an invoice follows it).
        self.listeners: list[Callable[[AsyncSession, Invoice], Awaitable[None]]] = []

    # ---------------------------------------------------------------- create
    async def create(
        self, session: AsyncSession, merchant_id: uuid.UUID, draft: InvoiceDraft
    ) -> CreateResult:
        """Insert and let the unique (merchant, order_id) index answer whether the order
        exists: one statement for a new fiat invoice, two with an address; a concurrent
        create waits for the first to commit and then returns its invoice."""
        try:
            invoice = await self._build(merchant_id, draft)
        except InvoiceError:
            # An existing order is returned even when the repeated request is not valid.
            existing = await self.get_by_order_id(session, merchant_id, draft.order_id)
            if existing is None:
                raise
            return CreateResult(await self._reuse(session, existing, draft), created=False)

        connection = await session.connection()
        if invoice.network and invoice.payer_currency:
            # Claimed first, so the insert runs in the transaction the claim opened.
            invoice.address = await self.addresses.allocate(
                session, invoice.network, ADDRESS_PURPOSE, merchant_id
            )
        invoice_id = await _insert_unless_order_exists(connection, _column_values(invoice))
        if invoice_id is None:
            if invoice.address is not None:
                await self.addresses.release(session, invoice.network, invoice.address)
            existing = await self.get_by_order_id(session, merchant_id, draft.order_id)
            assert existing is not None, "the conflicting invoice is committed and visible"
            return CreateResult(await self._reuse(session, existing, draft), created=False)
        invoice.id = invoice_id
        return CreateResult(invoice, created=True)

    async def create_alone(
        self, db: Database, merchant_id: uuid.UUID, draft: InvoiceDraft
    ) -> Invoice | None:
        """The common create, a new order, as one statement that is its own transaction
        (the address claim embedded in it), without a session.

        None when the request needs more than that (an existing order_id, a draft the
        service refuses, an empty address pool): the caller then runs `create` in a
        transaction, which answers those cases. Nothing this method wrote survives a None.
        """
        try:
            invoice = await self._build(merchant_id, draft)
        except InvoiceError:
            return None
        values = _column_values(invoice)
        if not (invoice.network and invoice.payer_currency):
            row = await db.run_alone(_INSERT_ALONE, values)
            if row is None:
                return None
            invoice.id = row["id"]
            return invoice
        if not self.addresses.serves(invoice.network):
            return None
        async with db.reader() as session:
            if await self.addresses.merchant_deriver(session, merchant_id, invoice.network):
                return None  # the merchant's own wallet: derived in a transaction
        values.update(claim_values(invoice.network, ADDRESS_PURPOSE))
        row = await db.run_alone(_CLAIM_AND_INSERT_ALONE, values)
        if row["id"] is None:
            if row["address"] is not None:  # the order exists: the claim goes back
                await db.run_alone(_RELEASE_ALONE, release_values(invoice.network, row["address"]))
            return None
        invoice.id = row["id"]
        invoice.address = row["address"]
        return invoice

    async def _build(self, merchant_id: uuid.UUID, draft: InvoiceDraft) -> Invoice:
        """A priced, validated invoice, not yet stored."""
        currency = self.catalogue.currency(draft.currency)
        if currency is None:
            raise CurrencyNotFound(draft.currency)
        resolved = self._resolve_payer(draft)
        currencies = self._coin_list(draft.currencies)
        except_currencies = self._coin_list(draft.except_currencies)
        if draft.allowed_services is not None:
            currencies = _within(currencies, self._coin_list(draft.allowed_services) or [])

        now = utcnow()
        invoice = Invoice(
            uuid=uuid.uuid4(),
            merchant_id=merchant_id,
            order_id=draft.order_id,
            amount=round_half_up(draft.amount, currency.precision),
            currency=currency.code,
            to_currency=draft.to_currency.upper() if draft.to_currency else None,
            course_source=draft.course_source,
            discount_percent=draft.discount_percent,
            subtract=draft.subtract,
            accuracy_payment_percent=draft.accuracy_payment_percent,
            is_payment_multiple=draft.is_payment_multiple,
            lifetime=draft.lifetime,
            url_return=draft.url_return,
            url_success=draft.url_success,
            url_callback=draft.url_callback,
            additional_data=draft.additional_data,
            from_referral_code=draft.from_referral_code,
            currencies=currencies,
            except_currencies=except_currencies,
            network=resolved.network,
            payer_currency=resolved.payer_currency,
            discount=Decimal(0),
            status=InvoiceStatus.CHECK.value,
            expired_at=now + timedelta(seconds=draft.lifetime),
            created_at=now,
            updated_at=now,
        )
        if invoice.amount <= 0:  # rounded to nothing in the currency's precision
            raise AmountOutOfRange(quantum(currency.precision), currency.code, below=True)
        if resolved.payer_currency is not None:
            await self._price(invoice, resolved)
        return invoice

    def _resolve_payer(self, draft: InvoiceDraft) -> _Resolved:
        catalogue = self.catalogue
        if draft.to_currency:
            if not catalogue.is_crypto(draft.to_currency):
                raise ToCurrencyNotFound(draft.to_currency)
            payer_currency: str | None = draft.to_currency.upper()
        elif catalogue.is_crypto(draft.currency):
            payer_currency = draft.currency.upper()
        else:
            payer_currency = None

        if draft.network:
            network = catalogue.network(draft.network)
            if network is None:
                raise NetworkNotFound(draft.network)
            if payer_currency is None:
                return _Resolved(None, network.code, None)
            service = catalogue.service(payer_currency, network.code)
            if service is None:
                raise (
                    ToCurrencyNotFound(payer_currency)
                    if draft.to_currency
                    else NetworkNotFound(draft.network)
                )
            if not service.available or not _allowed(draft, service):
                raise ServiceUnavailable(service.key)
            return _Resolved(payer_currency, network.code, service)

        if payer_currency is None:
            return _Resolved(None, None, None)
        available = [
            s for s in catalogue.services_for(payer_currency) if s.available and _allowed(draft, s)
        ]
        if not available:
            raise ServiceUnavailable(payer_currency)
        if len(available) == 1:
            return _Resolved(payer_currency, available[0].network, available[0])
        return _Resolved(payer_currency, None, None)

    def _coin_list(self, choices: list[CoinChoice] | None) -> list[dict[str, str | None]] | None:
        if not choices:
            return None
        normalized = []
        for choice in choices:
            if self.catalogue.currency(choice.currency) is None:
                raise CurrencyNotFound(choice.currency)
            if choice.network and self.catalogue.network(choice.network) is None:
                raise NetworkNotFound(choice.network)
            normalized.append(
                CoinChoice(
                    choice.currency.upper(), choice.network.lower() if choice.network else None
                ).as_json()
            )
        return normalized

    async def _price(self, invoice: Invoice, resolved: _Resolved) -> None:
        """Lock the rate and the payer's amount on the invoice."""
        assert resolved.payer_currency is not None
        priced = await self._quote(invoice, resolved.payer_currency, resolved.service)
        self.catalogue.check_limits(
            priced.quote.payer_amount, resolved.payer_currency, resolved.service, AmountOutOfRange
        )
        quoted = priced.quote
        invoice.discount_percent = priced.discount_percent
        invoice.payer_amount_exchange_rate = quoted.rate
        invoice.rate_source = priced.source
        invoice.discount = quoted.discount
        invoice.payer_amount = quoted.payer_amount
        invoice.commission = quoted.commission
        invoice.merchant_amount = quoted.merchant_amount
        invoice.payment_amount = Decimal(0) if resolved.service else None

    async def _quote(
        self, invoice: Invoice, payer_currency: str, service: Service | None
    ) -> _Priced:
        """What the payer would pay in `payer_currency` now, without touching the invoice.

        The discount is the invoice's own `discount_percent`, or else the merchant's
        standing discount for the coin and network (spec section 10), which the invoice
        then shows as its `discount_percent`.
        """
        discount_percent = invoice.discount_percent
        if discount_percent is None and service is not None:
            standing = await self.discounts.percent(
                invoice.merchant_id, payer_currency, service.network
            )
            discount_percent = standing or None
        if payer_currency == invoice.currency:
            rate, source = Decimal(1), None
        else:
            try:
                found = await self.rates.get_rate(
                    invoice.currency, payer_currency, invoice.course_source
                )
            except RateUnavailable as exc:
                raise ConversionFailed(f"{invoice.currency}/{payer_currency}") from exc
            rate, source = found.value, found.source
        places = pricing.payer_places(self.catalogue.precision(payer_currency), service)
        quoted = pricing.quote(
            amount=invoice.amount,
            rate=rate,
            places=places,
            discount_percent=discount_percent,
            subtract=invoice.subtract,
            service=service,
        )
        return _Priced(quoted, discount_percent, source)

    # ---------------------------------------------------------------- the payer's choice
    def payment_options(self, invoice: Invoice) -> list[Service]:
        """The coins and networks the payer may still pick: what the invoice fixed
        already, narrowed by its allowed and excluded lists, among the services open."""
        allowed = invoice.currencies
        excluded = invoice.except_currencies or []
        options = []
        for service in self.catalogue.services:
            if not service.available or not self.addresses.serves(service.network):
                continue
            if invoice.payer_currency and service.currency != invoice.payer_currency:
                continue
            if invoice.network and service.network != invoice.network:
                continue
            if allowed and not any(_matches(choice, service) for choice in allowed):
                continue
            if any(_matches(choice, service) for choice in excluded):
                continue
            options.append(service)
        return options

    async def option_quotes(self, invoice: Invoice) -> list[OptionQuote]:
        """Each option with what the payer would pay now; one the rates cannot price or
        the coin's limits refuse is listed as unavailable rather than hidden."""
        quotes = []
        for service in self.payment_options(invoice):
            try:
                priced = await self._quote(invoice, service.currency, service)
                self.catalogue.check_limits(
                    priced.quote.payer_amount, service.currency, service, AmountOutOfRange
                )
            except (ConversionFailed, AmountOutOfRange):
                quotes.append(OptionQuote(service, None))
            else:
                quotes.append(OptionQuote(service, priced.quote.payer_amount))
        return quotes

    async def choose(
        self,
        session: AsyncSession,
        invoice: Invoice,
        currency: str,
        network: str,
        now: datetime,
    ) -> None:
        """The payer picks coin and network on the payment page: the invoice is priced at
        the rate of now and gets its address. Once only, and only while it can be paid:
        the caller holds the invoice's row lock, so two tabs cannot both choose."""
        if invoice.address is not None:
            raise CoinAlreadyChosen(str(invoice.uuid))
        if InvoiceStatus(invoice.status) != InvoiceStatus.CHECK or invoice.expired_at <= now:
            raise InvoiceNotPayable(str(invoice.uuid))
        service = next(
            (
                option
                for option in self.payment_options(invoice)
                if option.currency == currency.upper() and option.network == network.lower()
            ),
            None,
        )
        if service is None:
            raise OptionNotOffered(f"{currency} {network}")
        await self._price(invoice, _Resolved(service.currency, service.network, service))
        invoice.payer_currency = service.currency
        invoice.network = service.network
        invoice.address = await self.addresses.allocate(
            session, service.network, ADDRESS_PURPOSE, invoice.merchant_id
        )
        invoice.updated_at = now
        await session.flush()

    async def get_for_update(self, session: AsyncSession, invoice_uuid: uuid.UUID) -> Invoice:
        """An invoice by its public uuid, whatever its merchant (the payment page's
        capability is the uuid), its row locked for the rest of the transaction."""
        invoice = await session.scalar(
            select(Invoice).where(Invoice.uuid == invoice_uuid).with_for_update()
        )
        if invoice is None:
            raise InvoiceNotFound(str(invoice_uuid))
        return invoice

    async def _reuse(self, session: AsyncSession, invoice: Invoice, draft: InvoiceDraft) -> Invoice:
        """An order_id that exists: the invoice as it is, or renewed if `is_refresh` asks
        and it expired unpaid (new address and expiry, nothing else changes)."""
        now = utcnow()
        await self.expire_if_due(session, invoice, now)
        if draft.is_refresh and invoice.status == InvoiceStatus.CANCEL:
            await self.refresh(session, invoice, now)
        return invoice

    async def refresh(self, session: AsyncSession, invoice: Invoice, now: datetime) -> None:
        """A new life for an expired invoice: new expiry and address, and, when the payer
        pays in another currency than the invoice's, the rate and payer amount of now
        (the old rate expired with the invoice)."""
        self.transition(invoice, InvoiceStatus.CHECK, now)
        invoice.expired_at = now + timedelta(seconds=invoice.lifetime)
        if invoice.payer_currency and invoice.payer_currency != invoice.currency:
            service = (
                self.catalogue.service(invoice.payer_currency, invoice.network)
                if invoice.network
                else None
            )
            await self._price(invoice, _Resolved(invoice.payer_currency, invoice.network, service))
        if invoice.address is not None and invoice.network is not None:
            invoice.address = await self.addresses.allocate(
                session, invoice.network, ADDRESS_PURPOSE, invoice.merchant_id
            )
        await session.flush()

    # ---------------------------------------------------------------- payments
    def settle(self, invoice: Invoice, now: datetime, *, pending: bool = False) -> bool:
        """Move the invoice to what its credited total (and any transfer still waiting
        for confirmations) makes of it; True when the status changed. Refunds, failures
        and an AML lock are left alone: deposits do not decide those."""
        current = InvoiceStatus(invoice.status)
        if current not in SETTLED_BY_DEPOSITS:
            return False
        invoice.updated_at = now
        target = status_for_payment(invoice, now, pending=pending)
        if target == current:
            return False
        self.transition(invoice, target, now)
        return True

    # ---------------------------------------------------------------- lifecycle
    def transition(self, invoice: Invoice, target: InvoiceStatus, now: datetime) -> None:
        """The single place an invoice changes status."""
        check_transition(invoice.status, target)
        invoice.status = target.value
        invoice.updated_at = now

    async def expire_if_due(self, session: AsyncSession, invoice: Invoice, now: datetime) -> bool:
        """Expire the invoice if its lifetime is over, announcing it. Compare-and-set on
        the status: of two requests (or a request and the worker) reading the same due
        invoice, exactly one expires it and records the event."""
        current = InvoiceStatus(invoice.status)
        target = ON_EXPIRY.get(current)
        if target is None or invoice.expired_at > now:
            return False
        check_transition(current, target)
        changed = await session.execute(
            update(Invoice)
            .where(Invoice.id == invoice.id, Invoice.status == current.value)
            .values(status=target.value, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount == 0:
            await session.refresh(invoice)
            return False
        set_committed_value(invoice, "status", target.value)
        set_committed_value(invoice, "updated_at", now)
        await self.announce(session, invoice)
        return True

    async def announce(self, session: AsyncSession, invoice: Invoice) -> None:
        """Record the invoice's current state as a webhook event, in the caller's
        transaction (with the USD value of what was paid, at the rates of now)."""
        usd = None
        if invoice.payment_amount and invoice.payer_currency:
            rate = (await self.rates.book()).convert(invoice.payer_currency, "USD")
            if rate is not None:
                usd = round_half_up(MONEY.multiply(invoice.payment_amount, rate.value), 2)
        await webhooks.record(
            session,
            merchant_id=invoice.merchant_id,
            topic=webhooks.INVOICE_STATUS,
            subject_uuid=invoice.uuid,
            url=invoice.url_callback,
            payload=snapshot(invoice, usd),
        )
        for listener in self.listeners:
            await listener(session, invoice)

    async def expire_due(self, session: AsyncSession, now: datetime, limit: int = 500) -> int:
        """Expire invoices whose lifetime ended; safe to run on several workers at once."""
        stmt = (
            select(Invoice)
            .where(Invoice.status.in_([s.value for s in ON_EXPIRY]), Invoice.expired_at <= now)
            .order_by(Invoice.expired_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        expired = 0
        for invoice in await session.scalars(stmt):
            expired += await self.expire_if_due(session, invoice, now)
        return expired

    # ---------------------------------------------------------------- reads
    async def get_by_order_id(
        self, session: AsyncSession, merchant_id: uuid.UUID, order_id: str
    ) -> Invoice | None:
        return await session.scalar(
            select(Invoice).where(Invoice.merchant_id == merchant_id, Invoice.order_id == order_id)
        )

    async def find(
        self,
        session: AsyncSession,
        merchant_id: uuid.UUID,
        *,
        invoice_uuid: uuid.UUID | None = None,
        order_id: str | None = None,
    ) -> Invoice:
        """One of the merchant's invoices, brought up to date with its expiry."""
        if order_id is not None:
            invoice = await self.get_by_order_id(session, merchant_id, order_id)
        else:
            invoice = await session.scalar(
                select(Invoice).where(
                    Invoice.merchant_id == merchant_id, Invoice.uuid == invoice_uuid
                )
            )
        if invoice is None:
            raise InvoiceNotFound(invoice_uuid or order_id)
        await self.expire_if_due(session, invoice, utcnow())
        return invoice

    async def find_for_resend(
        self,
        session: AsyncSession,
        merchant_id: uuid.UUID,
        *,
        invoice_uuid: uuid.UUID | None = None,
        order_id: str | None = None,
        txid: str | None = None,
    ) -> Invoice | None:
        """An invoice by uuid, order_id or the hash of a transaction that paid it."""
        query = select(Invoice).where(Invoice.merchant_id == merchant_id)
        if invoice_uuid is not None:
            query = query.where(Invoice.uuid == invoice_uuid)
        elif order_id is not None:
            query = query.where(Invoice.order_id == order_id)
        elif txid is not None:
            paid_by = select(Deposit.invoice_id).where(Deposit.txid == txid)
            query = query.where((Invoice.txid == txid) | Invoice.id.in_(paid_by))
        else:
            return None
        return await session.scalar(query.limit(1))

    async def history(
        self,
        session: AsyncSession,
        merchant_id: uuid.UUID,
        filters: HistoryFilter,
        cursor: Cursor | None,
        per_page: int,
    ) -> Page[Invoice]:
        stmt = select(Invoice).where(Invoice.merchant_id == merchant_id)
        return await history_page(session, stmt, Invoice.id, Invoice.created_at, filters,
                                  cursor, per_page)  # fmt: skip


async def _insert_unless_order_exists(
    connection: AsyncConnection, values: dict[str, Any]
) -> int | None:
    """The new invoice's id, or None when the merchant already has this order_id."""
    result = await connection.execute(_insert_statement(connection.dialect.name), values)
    return result.scalar()


@functools.cache
def _insert_statement(dialect: str) -> Any:
    """Built once per engine kind, so each create only binds parameters (building and
    caching a statement per request cost more than the database round trip)."""
    table = Invoice.__table__
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=[table.c.merchant_id, table.c.order_id])
        .returning(table.c.id)
    )


_INVOICE_COLUMNS = [column.key for column in Invoice.__table__.columns if column.key != "id"]


def _claim_and_insert() -> Any:
    """Claim an address and insert the invoice holding it, in one PostgreSQL statement.

    Returns one row (address, id): both set when the invoice was made; id NULL with an
    address when the order exists (the caller releases it); both NULL when the pool is empty.
    """
    table = Invoice.__table__
    claimed = CLAIM_ADDRESS.cte("claimed")
    columns = [column for column in table.columns if column.key not in ("id", "address")]
    rows = select(*[bindparam(c.key, type_=c.type) for c in columns], claimed.c.address)
    inserted = (
        postgresql.insert(table)
        .from_select([c.key for c in columns] + ["address"], rows)
        .on_conflict_do_nothing(index_elements=[table.c.merchant_id, table.c.order_id])
        .returning(table.c.id)
        .cte("inserted")
    )
    return select(
        select(claimed.c.address).scalar_subquery().label("address"),
        select(inserted.c.id).scalar_subquery().label("id"),
    )


_INSERT_ALONE = StandaloneStatement(_insert_statement("postgresql"), _INVOICE_COLUMNS)
_CLAIM_AND_INSERT_ALONE = StandaloneStatement(_claim_and_insert())
_RELEASE_ALONE = StandaloneStatement(RELEASE_ADDRESS)


def _column_values(invoice: Invoice) -> dict[str, Any]:
    return {key: getattr(invoice, key) for key in _INVOICE_COLUMNS}


def payment_uri_of(invoice: Invoice, catalogue: Catalogue) -> str | None:
    """What the invoice's QR code carries: a payment URI for the amount still due (none
    named once nothing is), or the bare address when the catalogue no longer describes
    its coin, since a URI naming the wrong coin or units is worse than none. None before
    the invoice has an address."""
    if not invoice.address or not invoice.network:
        return None
    network = catalogue.network(invoice.network)
    service = (
        catalogue.service(invoice.payer_currency, invoice.network)
        if invoice.payer_currency
        else None
    )
    if network is None or service is None:
        return invoice.address
    return payment_uri(network, service, invoice.address, invoice.amount_due or None)


def _allowed(draft: InvoiceDraft, service: Service) -> bool:
    """Whether the merchant's settings let payers use the service."""
    if draft.allowed_services is None:
        return True
    return any(_matches(choice.as_json(), service) for choice in draft.allowed_services)


def _within(
    requested: list[dict[str, str | None]] | None, allowed: list[dict[str, str | None]]
) -> list[dict[str, str | None]]:
    """The invoice's allowed coins narrowed to the merchant's: each requested entry that
    the merchant allows, an entry without a network becoming the merchant's networks of
    that coin. Nothing in common refuses the invoice (it could never be paid)."""
    if requested is None:
        narrowed = allowed
    else:
        narrowed = []
        for entry in requested:
            for permitted in allowed:
                if permitted["currency"] != entry["currency"]:
                    continue
                if entry["network"] in (None, permitted["network"]) or permitted["network"] is None:
                    item = {"currency": entry["currency"],
                            "network": entry["network"] or permitted["network"]}  # fmt: skip
                    if item not in narrowed:
                        narrowed.append(item)
    if not narrowed:
        raise ServiceUnavailable("none of the merchant's enabled coins")
    return narrowed


def _matches(choice: dict[str, Any], service: Service) -> bool:
    """Whether an entry of `currencies` / `except_currencies` names the service (an entry
    without a network names the coin on every network)."""
    if choice.get("currency") != service.currency:
        return False
    return choice.get("network") in (None, service.network)


def status_for_payment(invoice: Invoice, now: datetime, *, pending: bool = False) -> InvoiceStatus:
    """What the received total makes of an invoice: over, paid (within the tolerated
    `accuracy_payment_percent`), a transfer waiting for confirmations, under (waiting for a
    top-up while allowed), or unpaid."""
    received = invoice.payment_amount or Decimal(0)
    due = invoice.payer_amount
    assert due is not None, "only priced invoices receive deposits"
    if received > due:
        return InvoiceStatus.PAID_OVER
    tolerated = due - percent_of(due, invoice.accuracy_payment_percent)
    if received >= tolerated:
        return InvoiceStatus.PAID
    if pending:
        return InvoiceStatus.CONFIRM_CHECK
    expired = invoice.expired_at <= now
    if received > 0:
        waiting = invoice.is_payment_multiple and not expired
        return InvoiceStatus.WRONG_AMOUNT_WAITING if waiting else InvoiceStatus.WRONG_AMOUNT
    return InvoiceStatus.CANCEL if expired else InvoiceStatus.CHECK


def snapshot(invoice: Invoice, payment_amount_usd: Decimal | None = None) -> dict[str, Any]:
    """The invoice as a webhook event records it: dialect-neutral, amounts as exact text."""

    def text(value: Decimal | None) -> str | None:
        return None if value is None else f"{value:f}"

    return {
        "uuid": str(invoice.uuid),
        "order_id": invoice.order_id,
        "status": invoice.status,
        "is_final": is_final(invoice.status),
        "amount": text(invoice.amount),
        "currency": invoice.currency,
        "payer_amount": text(invoice.payer_amount),
        "payer_currency": invoice.payer_currency,
        "payer_amount_exchange_rate": text(invoice.payer_amount_exchange_rate),
        "payment_amount": text(invoice.payment_amount),
        "payment_amount_usd": text(payment_amount_usd),
        "merchant_amount": text(invoice.merchant_amount_now),
        "commission": text(invoice.commission_now),
        "network": invoice.network,
        "address": invoice.address,
        "from": invoice.from_address,
        "txid": invoice.txid,
        "additional_data": invoice.additional_data,
    }
