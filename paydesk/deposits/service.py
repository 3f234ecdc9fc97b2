"""The one entry point the chain layer credits through, and its undo.

`credit` books an observed transfer to the merchant exactly once: the deposit row's unique
(network, txid, output_index) decides, so a watcher that sees the same block twice, or two
watchers at once, credit it once. The booking, the invoice's new status and its webhook
event are written in the caller's transaction: all of them or none. `reverse` undoes a
deposit whose block was orphaned, with the same guarantees.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.catalogue.service import Catalogue
from paydesk.db import dialect_insert, utcnow
from paydesk.deposits.models import Deposit
from paydesk.invoices import pricing
from paydesk.invoices.models import Invoice
from paydesk.invoices.service import InvoiceService
from paydesk.ledger import service as ledger
from paydesk.ledger.models import AccountKind, JournalTransaction
from paydesk.money import MONEY, percent_of, round_half_up


class DepositError(Exception):
    pass


class UnknownAddress(DepositError):
    """No invoice (or wallet) holds this address on this network."""


@dataclass(frozen=True, slots=True)
class ObservedTransfer:
    """A confirmed incoming transfer as a chain adapter reports it."""

    network: str
    txid: str
    output_index: int
    address: str
    currency: str
    amount: Decimal
    from_address: str | None = None
    block_height: int | None = None
    block_hash: str | None = None


@dataclass(frozen=True, slots=True)
class CreditResult:
    deposit: Deposit
    #: False when this transfer had been credited before (nothing was written now).
    credited: bool
    status_changed: bool = False


class DepositService:
    def __init__(self, catalogue: Catalogue, invoices: InvoiceService) -> None:
        self.catalogue = catalogue
        self.invoices = invoices

    async def credit(self, session: AsyncSession, transfer: ObservedTransfer) -> CreditResult:
        if transfer.amount <= 0:
            raise DepositError("a deposit is a positive amount")
        invoice = await session.scalar(
            select(Invoice)
            .where(Invoice.network == transfer.network, Invoice.address == transfer.address)
            .with_for_update()
        )
        if invoice is None:
            raise UnknownAddress(f"{transfer.network}:{transfer.address}")
        currency = transfer.currency.upper()
        inserted = await session.execute(
            dialect_insert(session, Deposit)
            .values(
                network=transfer.network,
                txid=transfer.txid,
                output_index=transfer.output_index,
                address=transfer.address,
                currency=currency,
                amount=transfer.amount,
                from_address=transfer.from_address,
                block_height=transfer.block_height,
                block_hash=transfer.block_hash,
                merchant_id=invoice.merchant_id,
                invoice_id=invoice.id,
                status="credited",
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["network", "txid", "output_index"])
            .returning(Deposit.id)
        )
        deposit_id = inserted.scalar()
        if deposit_id is None:
            existing = await self._find(session, transfer.network, transfer.txid,
                                        transfer.output_index)  # fmt: skip
            assert existing is not None
            return CreditResult(existing, credited=False)
        deposit = await session.get_one(Deposit, deposit_id)

        # Only the invoice's own coin counts toward it; anything else sent to the address
        # is still the merchant's money and is credited, without moving the invoice.
        counts = currency == invoice.payer_currency
        commission = self._commission(invoice, transfer.amount, currency) if counts else None
        if commission is None:
            commission = self._service_commission(transfer.amount, currency, transfer.network)
        booked = await ledger.post(
            session,
            "deposit",
            f"deposit:{transfer.network}:{transfer.txid}:{transfer.output_index}",
            await self._credit_legs(session, deposit, commission),
            memo=f"invoice {invoice.uuid}",
        )
        deposit.credit_transaction_id = booked.transaction.id

        changed = False
        if counts:
            now = utcnow()
            if transfer.from_address:
                invoice.from_address = transfer.from_address
            invoice.txid = transfer.txid
            changed = self.invoices.apply_payment(invoice, transfer.amount, now)
            if changed:
                await self.invoices.announce(session, invoice)
        await session.flush()
        return CreditResult(deposit, credited=True, status_changed=changed)

    async def reverse(
        self, session: AsyncSession, network: str, txid: str, output_index: int
    ) -> bool:
        """Undo a credited deposit (its block left the chain). False if there is nothing
        to undo. What the merchant's balance cannot cover becomes the merchant's debt,
        settled by later deposits: no balance goes below zero."""
        deposit = await self._find(session, network, txid, output_index, lock=True)
        if deposit is None or deposit.status != "credited":
            return False
        original = await session.get_one(JournalTransaction, deposit.credit_transaction_id)
        legs = []
        for leg in await ledger.legs_of(session, original):
            if leg.account.kind == AccountKind.MERCHANT_BUSINESS and leg.amount > 0:
                available = await ledger.balance(session, leg.account)
                taken = min(available, leg.amount)
                legs.append(ledger.Leg(leg.account, -taken))
                if taken < leg.amount:
                    debt = await ledger.account(
                        session, AccountKind.MERCHANT_DEBT, leg.account.currency,
                        owner=leg.account.owner,
                    )  # fmt: skip
                    legs.append(ledger.Leg(debt, taken - leg.amount))
            else:
                legs.append(ledger.Leg(leg.account, -leg.amount))
        booked = await ledger.post(
            session,
            "deposit_reversal",
            f"reversal:{network}:{txid}:{output_index}",
            legs,
            reverses=original,
        )
        now = utcnow()
        deposit.status = "reversed"
        deposit.reversal_transaction_id = booked.transaction.id
        deposit.reversed_at = now
        if deposit.invoice_id is not None:
            invoice = await session.get_one(Invoice, deposit.invoice_id, with_for_update=True)
            if deposit.currency == invoice.payer_currency:
                invoice.txid = None if invoice.txid == txid else invoice.txid
                if self.invoices.apply_payment(invoice, -deposit.amount, now):
                    await self.invoices.announce(session, invoice)
        await session.flush()
        return True

    # ------------------------------------------------------------------ helpers
    async def _credit_legs(
        self, session: AsyncSession, deposit: Deposit, commission: Decimal
    ) -> list[ledger.Leg]:
        """Holdings up by the amount; the merchant gets it less commission, first paying
        back any debt a reversal left."""
        currency, merchant = deposit.currency, deposit.merchant_id
        holdings = await ledger.account(
            session, AccountKind.ONCHAIN_HOLDINGS, currency, network=deposit.network
        )
        business = await ledger.account(
            session, AccountKind.MERCHANT_BUSINESS, currency, owner=merchant
        )
        revenue = await ledger.account(session, AccountKind.PLATFORM_COMMISSION, currency)
        merchant_part = MONEY.subtract(deposit.amount, commission)
        legs = [
            ledger.Leg(holdings, -deposit.amount),
            ledger.Leg(revenue, commission),
        ]
        debt_account = await ledger.find_account(
            session, AccountKind.MERCHANT_DEBT, currency, owner=merchant
        )
        owed = await ledger.balance(session, debt_account) if debt_account else Decimal(0)
        repaid = min(owed, merchant_part)
        if debt_account is not None and repaid > 0:
            legs.append(ledger.Leg(debt_account, repaid))
        legs.append(ledger.Leg(business, MONEY.subtract(merchant_part, repaid)))
        return legs

    def _commission(self, invoice: Invoice, amount: Decimal, currency: str) -> Decimal | None:
        """The invoice's commission, or its share for a partial or excess payment."""
        if invoice.commission is None or not invoice.payer_amount:
            return None
        if amount == invoice.payer_amount:
            return invoice.commission
        places = self._places(currency, invoice.network)
        share = MONEY.divide(MONEY.multiply(invoice.commission, amount), invoice.payer_amount)
        return min(round_half_up(share, places), amount)

    def _service_commission(self, amount: Decimal, currency: str, network: str) -> Decimal:
        service = self.catalogue.service(currency, network)
        if service is None:
            return Decimal(0)
        places = self._places(currency, network)
        return min(round_half_up(percent_of(amount, service.percent), places), amount)

    def _places(self, currency: str, network: str | None) -> int:
        service = self.catalogue.service(currency, network) if network else None
        return pricing.payer_places(self.catalogue.precision(currency), service)

    @staticmethod
    async def _find(
        session: AsyncSession, network: str, txid: str, output_index: int, *, lock: bool = False
    ) -> Deposit | None:
        query = select(Deposit).where(
            Deposit.network == network,
            Deposit.txid == txid,
            Deposit.output_index == output_index,
        )
        return await session.scalar(query.with_for_update() if lock else query)
