"""What the payer sees of an invoice, and the two things the payer can do to it (pick the
coin, renew an expired invoice).

A `PaymentView` is everything the page shows, read in a few batched queries so that the
live-status poller can follow many open pages at once. Its `version` changes exactly when
something the payer can see changes.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, bindparam, select

from paydesk.catalogue.models import Network
from paydesk.catalogue.service import Catalogue
from paydesk.chains.devnet import DEVNET, Devnet
from paydesk.chains.models import ChainCursor
from paydesk.db import Database, utcnow
from paydesk.deposits.models import Deposit
from paydesk.deposits.service import SEEN
from paydesk.invoices.models import Invoice
from paydesk.invoices.service import (
    InvoiceNotFound,
    InvoiceNotPayable,
    InvoiceService,
    OptionQuote,
)
from paydesk.invoices.status import ON_EXPIRY, InvoiceStatus
from paydesk.links.service import description_of
from paydesk.merchants.models import Merchant
from paydesk.money import ZERO

S = InvoiceStatus


class PageState(StrEnum):
    CHOOSE = "choose"  # no coin yet: pick coin, then network
    PAY = "pay"  # address and amount shown, nothing seen yet
    CONFIRMING = "confirming"  # a transfer is seen, waiting for confirmations
    UNDERPAID = "underpaid"  # short, and a top-up is still possible
    PAID = "paid"
    PARTIAL = "partial"  # short, and final
    EXPIRED = "expired"
    FAILED = "failed"
    HELD = "held"  # frozen for review
    REFUND = "refund"  # refund in progress or done


FINAL_STATES = frozenset(
    {PageState.PAID, PageState.PARTIAL, PageState.EXPIRED, PageState.FAILED, PageState.REFUND}
)

_BY_STATUS = {
    S.CONFIRM_CHECK: PageState.CONFIRMING,
    S.WRONG_AMOUNT_WAITING: PageState.UNDERPAID,
    S.PAID: PageState.PAID,
    S.PAID_OVER: PageState.PAID,
    S.WRONG_AMOUNT: PageState.PARTIAL,
    S.CANCEL: PageState.EXPIRED,
    S.FAIL: PageState.FAILED,
    S.SYSTEM_FAIL: PageState.FAILED,
    S.LOCKED: PageState.HELD,
    S.REFUND_PROCESS: PageState.REFUND,
    S.REFUND_FAIL: PageState.REFUND,
    S.REFUND_PAID: PageState.REFUND,
}


@dataclass(frozen=True, slots=True)
class Sighting:
    """A transfer to the invoice's address waiting for confirmations."""

    txid: str
    amount: Decimal
    confirmations: int


@dataclass(slots=True)
class PaymentView:
    invoice: Invoice
    merchant_name: str
    state: PageState
    now: datetime
    network: Network | None = None
    sightings: list[Sighting] = field(default_factory=list)
    #: Filled for the choose state only (it needs rates), by `PaymentPages.options`.
    options: list[OptionQuote] = field(default_factory=list)
    renewable: bool = False
    #: Whether the page offers its devnet test wallet for this invoice.
    test_wallet: bool = False

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def seconds_left(self) -> int:
        return max(int((self.invoice.expired_at - self.now).total_seconds()), 0)

    @property
    def amount_due(self) -> Decimal | None:
        return self.invoice.amount_due

    @property
    def received(self) -> Decimal:
        return self.invoice.payment_amount or ZERO

    @property
    def required_confirmations(self) -> int | None:
        return self.network.confirmations if self.network else None

    @property
    def confirmations(self) -> int:
        """The least-confirmed pending transfer's count: what the payer is waiting for."""
        return min((s.confirmations for s in self.sightings), default=0)

    @property
    def version(self) -> str:
        invoice = self.invoice
        parts = [
            self.state,
            invoice.status,
            invoice.payer_currency,
            invoice.network,
            invoice.address,
            invoice.payer_amount,
            invoice.payment_amount,
            int(invoice.expired_at.timestamp()),
            *(f"{s.txid}:{s.confirmations}" for s in self.sightings),
        ]
        text = "|".join("" if part is None else str(part) for part in parts)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class PaymentPages:
    def __init__(
        self,
        db: Database,
        catalogue: Catalogue,
        invoices: InvoiceService,
        *,
        renewable: bool,
        test_wallet: Devnet | None = None,
    ) -> None:
        self.db = db
        self.catalogue = catalogue
        self.invoices = invoices
        #: Whether a payer may renew an invoice that expired with nothing paid (the
        #: operator's choice: the shop has been told `cancel` by then).
        self.renewable = renewable
        #: The devnet, when the page may pay devnet invoices itself (a demo server).
        self.test_wallet = test_wallet

    async def view(self, invoice_uuid: uuid.UUID) -> PaymentView:
        views = await self.views([invoice_uuid])
        if invoice_uuid not in views:
            raise InvoiceNotFound(str(invoice_uuid))
        return views[invoice_uuid]

    async def views(self, invoice_uuids: Iterable[uuid.UUID]) -> dict[uuid.UUID, PaymentView]:
        """The views of several invoices in one query (with their unconfirmed transfers
        and how far each network's watcher has read); one whose lifetime ran out is
        expired first, as any reader of it would."""
        wanted = list(invoice_uuids)
        if not wanted:
            return {}
        now = utcnow()
        async with self.db.reader() as session:
            if len(wanted) == 1:
                result = await session.execute(_VIEW_ONE, {"uuid": wanted[0]})
            else:
                result = await session.execute(_VIEW_MANY, {"uuids": wanted})
            rows = result.all()
        invoices: dict[int, tuple[Invoice, str]] = {}
        sightings: dict[int, list[Sighting]] = defaultdict(list)
        for invoice, name, txid, amount, height, tip in rows:
            invoices[invoice.id] = (invoice, name)
            if txid is not None:
                confirmations = 0
                if height is not None and tip is not None:
                    confirmations = max(tip - height + 1, 0)
                sightings[invoice.id].append(Sighting(txid, amount, confirmations))
        due = [invoice for invoice, _ in invoices.values() if _is_due(invoice, now)]
        if due:
            async with self.db.transaction() as session:
                for invoice in due:
                    session.add(invoice)
                    await self.invoices.expire_if_due(session, invoice, now)
        return {
            invoice.uuid: self._view(invoice, name, sightings.get(invoice.id, []), now)
            for invoice, name in invoices.values()
        }

    async def description(self, invoice: Invoice) -> str | None:
        """What the merchant wrote about a payment link's invoice (None: not a link). One
        lookup on the link's unique invoice id, for the full page only: it never changes,
        so the live updates (and the poller's batched views) do without it."""
        async with self.db.reader() as session:
            return await description_of(session, invoice.id)

    async def options(self, view: PaymentView, currency: str | None = None) -> None:
        """The coins (or, once a coin is picked, its networks) the payer can choose."""
        quotes = await self.invoices.option_quotes(view.invoice)
        if currency:
            quotes = [q for q in quotes if q.service.currency == currency.upper()]
        view.options = quotes

    async def choose(self, invoice_uuid: uuid.UUID, currency: str, network: str) -> None:
        async with self.db.transaction() as session:
            invoice = await self.invoices.get_for_update(session, invoice_uuid)
            await self.invoices.choose(session, invoice, currency, network, utcnow())

    async def pay_with_test_wallet(self, invoice_uuid: uuid.UUID, amount: Decimal | None) -> None:
        """Send devnet coins to the invoice, as a payer's wallet would: what is due, or
        `amount` (to try an underpayment)."""
        if self.test_wallet is None:
            raise InvoiceNotPayable(str(invoice_uuid))
        async with self.db.transaction() as session:
            invoice = await self.invoices.get_for_update(session, invoice_uuid)
            if not _takes_test_coins(invoice, utcnow()):
                raise InvoiceNotPayable(str(invoice_uuid))
            await self.test_wallet.pay_invoice(session, invoice, self.invoices, amount=amount)

    async def renew(self, invoice_uuid: uuid.UUID) -> None:
        """A new address, rate and lifetime for an invoice that expired unpaid."""
        async with self.db.transaction() as session:
            invoice = await self.invoices.get_for_update(session, invoice_uuid)
            if not self._renewable(invoice):
                raise InvoiceNotPayable(str(invoice_uuid))
            await self.invoices.refresh(session, invoice, utcnow())

    def _view(
        self, invoice: Invoice, merchant_name: str, sightings: list[Sighting], now: datetime
    ) -> PaymentView:
        status = InvoiceStatus(invoice.status)
        if status in (S.CHECK, S.PROCESS):
            if invoice.address is None:
                state = PageState.CHOOSE
            elif sightings:
                state = PageState.CONFIRMING
            else:
                state = PageState.PAY
        else:
            state = _BY_STATUS[status]
        return PaymentView(
            invoice=invoice,
            merchant_name=merchant_name,
            state=state,
            now=now,
            network=self.catalogue.network(invoice.network) if invoice.network else None,
            sightings=sightings,
            renewable=self._renewable(invoice),
            test_wallet=self.test_wallet is not None and _takes_test_coins(invoice, now),
        )

    def _renewable(self, invoice: Invoice) -> bool:
        return (
            self.renewable
            and invoice.status == S.CANCEL
            and not invoice.payment_amount
            and invoice.address is not None
        )


def _view_query() -> Select[Any]:
    """An invoice with its merchant's name, each of its transfers still waiting for
    confirmations, and the height its network's watcher has read."""
    return (
        select(
            Invoice,
            Merchant.name,
            Deposit.txid,
            Deposit.amount,
            Deposit.block_height,
            ChainCursor.height,
        )
        .join(Merchant, Merchant.id == Invoice.merchant_id)
        .outerjoin(Deposit, and_(Deposit.invoice_id == Invoice.id, Deposit.status == SEEN))
        .outerjoin(ChainCursor, ChainCursor.network == Deposit.network)
    )


# Built once: building a statement costs more than running a cached one.
_VIEW_ONE = _view_query().where(Invoice.uuid == bindparam("uuid"))
_VIEW_MANY = _view_query().where(Invoice.uuid.in_(bindparam("uuids", expanding=True)))


def _takes_test_coins(invoice: Invoice, now: datetime) -> bool:
    return (
        invoice.network == DEVNET
        and invoice.address is not None
        and InvoiceStatus(invoice.status) in (S.CHECK, S.WRONG_AMOUNT_WAITING)
        and invoice.expired_at > now
    )


def _is_due(invoice: Invoice, now: datetime) -> bool:
    return InvoiceStatus(invoice.status) in ON_EXPIRY and invoice.expired_at <= now
