"""The one path every chain transfer takes into the books, and back out.

A transfer to a watched address is first *seen* (in the mempool, or in a block without
enough confirmations): the deposit row exists, nothing is booked, the invoice shows
`confirm_check`. Once confirmed it is *credited*: booked to the merchant exactly once — the
deposit row's unique (network, txid, output_index) decides, so a watcher that sees the same
block twice, or two watchers at once, credit it once. If its block is orphaned it is
*reversed* (credited) or *orphaned* (only seen). The booking, the invoice's new status and
its webhook event are written in the caller's transaction: all of them or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.catalogue.service import Catalogue
from paydesk.db import dialect_insert, utcnow
from paydesk.deposits.models import Deposit
from paydesk.invoices import pricing
from paydesk.invoices.models import Invoice
from paydesk.invoices.service import InvoiceService
from paydesk.invoices.status import is_final
from paydesk.ledger import service as ledger
from paydesk.ledger.models import Account, AccountKind, JournalTransaction, Posting
from paydesk.money import MONEY, percent_of, round_half_up
from paydesk.wallets.models import ACTIVE, StaticWallet
from paydesk.wallets.service import WalletService

SEEN = "seen"
CREDITED = "credited"
REVERSED = "reversed"
ORPHANED = "orphaned"

#: Accounts a reversed deposit takes back only as far as they hold it; the rest becomes
#: the merchant's debt (no balance goes below zero).
TAKEN_BACK_IF_THERE = frozenset({AccountKind.MERCHANT_BUSINESS, AccountKind.HELD_DEPOSITS})


class DepositError(Exception):
    pass


class UnknownAddress(DepositError):
    """No invoice (or wallet) holds this address on this network."""


@dataclass(frozen=True, slots=True)
class ObservedTransfer:
    """An incoming transfer as the watcher reports it: in a block, or (no block) in the
    mempool."""

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


def credit_reference(deposit: Deposit) -> str:
    """The journal reference of a deposit's credit. It names the block: a transfer
    reorganised into another block is a new credit, after the first one's reversal."""
    block = deposit.block_hash or ""
    return f"deposit:{deposit.network}:{deposit.txid}:{deposit.output_index}:{block}"


def reversal_reference(deposit: Deposit) -> str:
    return "reversal" + credit_reference(deposit).removeprefix("deposit")


class DepositService:
    def __init__(
        self, catalogue: Catalogue, invoices: InvoiceService, wallets: WalletService
    ) -> None:
        self.catalogue = catalogue
        self.invoices = invoices
        self.wallets = wallets

    async def observe(
        self, session: AsyncSession, transfer: ObservedTransfer, *, confirmed: bool = False
    ) -> Deposit | None:
        """Record a transfer seen on chain or in the mempool (nothing booked yet). None
        when the address is not one an invoice or a static wallet holds. Seeing it again
        updates its block; one that had been reversed or orphaned and comes back is seen
        anew.

        `confirmed`: it already has its confirmations and the caller confirms it next, so
        the invoice skips `confirm_check` (there is nothing to wait for)."""
        if transfer.amount <= 0:
            raise DepositError("a deposit is a positive amount")
        invoice = await session.scalar(
            select(Invoice)
            .where(Invoice.network == transfer.network, Invoice.address == transfer.address)
            .with_for_update()
        )
        wallet = None
        if invoice is None:
            wallet = await session.scalar(
                select(StaticWallet)
                .where(
                    StaticWallet.network == transfer.network,
                    StaticWallet.address == transfer.address,
                )
                .with_for_update()
            )
            if wallet is None:
                return None
        owner = invoice or wallet
        assert owner is not None
        currency = transfer.currency.upper()
        now = utcnow()
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
                merchant_id=owner.merchant_id,
                invoice_id=invoice.id if invoice else None,
                wallet_id=wallet.id if wallet else None,
                held=False,
                status=SEEN,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["network", "txid", "output_index"])
            .returning(Deposit.id)
        )
        deposit_id = inserted.scalar()
        if deposit_id is not None:
            deposit = await session.get_one(Deposit, deposit_id)
            if not confirmed:
                await self._seen(session, invoice, wallet, deposit, now)
            return deposit
        deposit = await self._find(session, transfer.network, transfer.txid,
                                   transfer.output_index, lock=True)  # fmt: skip
        assert deposit is not None
        if deposit.status == SEEN:
            deposit.block_height = transfer.block_height
            deposit.block_hash = transfer.block_hash
        elif deposit.status in (REVERSED, ORPHANED):
            # Back on chain: a new cycle (the earlier credit and reversal stay in the
            # journal under their own block's references).
            deposit.status = SEEN
            deposit.credit_transaction_id = None
            deposit.reversal_transaction_id = None
            deposit.credited_at = None
            deposit.reversed_at = None
            deposit.held = False
            deposit.block_height = transfer.block_height
            deposit.block_hash = transfer.block_hash
            if not confirmed:
                await self._seen(session, invoice, wallet, deposit, now)
        await session.flush()
        return deposit

    async def confirm(self, session: AsyncSession, deposit: Deposit) -> bool:
        """Book a seen deposit that has its confirmations; False if it is not seen (already
        credited, or gone)."""
        if deposit.status != SEEN:
            return False
        if deposit.wallet_id is not None:
            return await self._confirm_wallet_deposit(session, deposit)
        invoice = await self._invoice(session, deposit)
        counts = invoice is not None and deposit.currency == invoice.payer_currency
        commission = None
        if counts:
            assert invoice is not None
            commission = self._commission(invoice, deposit.amount, deposit.currency)
        if commission is None:
            commission = self._service_commission(deposit.amount, deposit.currency,
                                                  deposit.network)  # fmt: skip
        booked = await ledger.post(
            session,
            "deposit",
            credit_reference(deposit),
            await self._credit_legs(session, deposit, commission),
            memo=f"invoice {invoice.uuid}" if invoice is not None else None,
        )
        now = utcnow()
        deposit.status = CREDITED
        deposit.credit_transaction_id = booked.transaction.id
        deposit.credited_at = now
        if counts:
            assert invoice is not None
            invoice.payment_amount = MONEY.add(invoice.payment_amount or Decimal(0),
                                               deposit.amount)  # fmt: skip
            if deposit.from_address:
                invoice.from_address = deposit.from_address
            invoice.txid = deposit.txid
            await self._read_received(session, invoice)
            await self._settle(session, invoice, deposit, now, report_late=True)
        await session.flush()
        return True

    async def credit(self, session: AsyncSession, transfer: ObservedTransfer) -> CreditResult:
        """Observe and confirm at once: a transfer that already has its confirmations."""
        deposit = await self.observe(session, transfer, confirmed=True)
        if deposit is None:
            raise UnknownAddress(f"{transfer.network}:{transfer.address}")
        before = await self._status_of(session, deposit)
        credited = await self.confirm(session, deposit)
        after = await self._status_of(session, deposit)
        return CreditResult(deposit, credited=credited, status_changed=before != after)

    async def withdraw(self, session: AsyncSession, deposit: Deposit) -> bool:
        """Undo whatever a deposit did, because its block (or mempool entry) is gone: a
        credited one is reversed in the ledger, a seen one is orphaned. False if there is
        nothing to undo."""
        if deposit.status == SEEN:
            deposit.status = ORPHANED
            invoice = await self._invoice(session, deposit)
            if invoice is not None:
                await self._settle(session, invoice, deposit, utcnow())
            wallet = await self._wallet(session, deposit)
            if wallet is not None and wallet.status == ACTIVE:
                await self.wallets.announce(session, wallet, deposit, "cancel")
            await session.flush()
            return True
        if deposit.status != CREDITED:
            return False
        original = await session.get_one(JournalTransaction, deposit.credit_transaction_id)
        legs = []
        for leg in await ledger.legs_of(session, original):
            if leg.account.kind in TAKEN_BACK_IF_THERE and leg.amount > 0:
                available = await ledger.balance(session, leg.account)
                taken = min(available, leg.amount)
                legs.append(ledger.Leg(leg.account, -taken))
                if taken < leg.amount:
                    debt = await ledger.account(
                        session, AccountKind.MERCHANT_DEBT, leg.account.currency,
                        owner=deposit.merchant_id, network=leg.account.network,
                    )  # fmt: skip
                    legs.append(ledger.Leg(debt, taken - leg.amount))
            else:
                legs.append(ledger.Leg(leg.account, -leg.amount))
        booked = await ledger.post(
            session,
            "deposit_reversal",
            reversal_reference(deposit),
            legs,
            reverses=original,
        )
        now = utcnow()
        deposit.status = REVERSED
        deposit.reversal_transaction_id = booked.transaction.id
        deposit.reversed_at = now
        invoice = await self._invoice(session, deposit)
        if invoice is not None and deposit.currency == invoice.payer_currency:
            invoice.payment_amount = MONEY.subtract(invoice.payment_amount or Decimal(0),
                                                    deposit.amount)  # fmt: skip
            if invoice.txid == deposit.txid:
                invoice.txid = None
            await self._read_received(session, invoice)
            await self._settle(session, invoice, deposit, now, taken_back=True)
        wallet = await self._wallet(session, deposit)
        if wallet is not None and not deposit.held:
            await self.wallets.announce(session, wallet, deposit, "cancel")
        await session.flush()
        return True

    async def reverse(
        self, session: AsyncSession, network: str, txid: str, output_index: int
    ) -> bool:
        """Undo a credited deposit (its block left the chain). False if there is nothing
        to undo. What the merchant's balance cannot cover becomes the merchant's debt,
        settled by later deposits: no balance goes below zero."""
        deposit = await self._find(session, network, txid, output_index, lock=True)
        if deposit is None or deposit.status != CREDITED:
            return False
        return await self.withdraw(session, deposit)

    # ------------------------------------------------------------------ static wallets
    async def _confirm_wallet_deposit(self, session: AsyncSession, deposit: Deposit) -> bool:
        """Credit the merchant (less the service's commission) while the wallet is active;
        once it is blocked, hold the deposit apart, or send it back at once when the
        wallet was blocked with force refund."""
        wallet = await self._wallet(session, deposit)
        assert wallet is not None
        commission = None
        if wallet.status == ACTIVE:
            commission = self._service_commission(deposit.amount, deposit.currency,
                                                  deposit.network)  # fmt: skip
            legs = await self._credit_legs(session, deposit, commission)
        else:
            holdings = await ledger.account(
                session, AccountKind.ONCHAIN_HOLDINGS, deposit.currency, network=deposit.network
            )
            legs = [
                ledger.Leg(holdings, -deposit.amount),
                ledger.Leg(await self.wallets.held_account(session, wallet), deposit.amount),
            ]
        booked = await ledger.post(
            session, "deposit", credit_reference(deposit), legs, memo=f"wallet {wallet.uuid}"
        )
        deposit.status = CREDITED
        deposit.credit_transaction_id = booked.transaction.id
        deposit.credited_at = utcnow()
        deposit.held = commission is None
        await session.flush()
        if commission is not None:
            await self.wallets.announce(session, wallet, deposit, "paid", commission=commission)
        elif wallet.force_refund:
            await self.wallets.send_back(session, wallet, deposit)
        return True

    async def _seen(
        self,
        session: AsyncSession,
        invoice: Invoice | None,
        wallet: StaticWallet | None,
        deposit: Deposit,
        now: datetime,
    ) -> None:
        if invoice is not None:
            await self._settle(session, invoice, deposit, now)
        elif wallet is not None and wallet.status == ACTIVE:
            await self.wallets.announce(session, wallet, deposit, "confirm_check")

    @staticmethod
    async def _wallet(session: AsyncSession, deposit: Deposit) -> StaticWallet | None:
        if deposit.wallet_id is None:
            return None
        return await session.get_one(StaticWallet, deposit.wallet_id, with_for_update=True)

    # ------------------------------------------------------------------ invoice status
    async def _settle(
        self,
        session: AsyncSession,
        invoice: Invoice,
        deposit: Deposit,
        now: datetime,
        *,
        report_late: bool = False,
        taken_back: bool = False,
    ) -> None:
        """Bring the invoice's status in line with its deposits and announce a change.

        An invoice that was final does not go back to `confirm_check` for a late transfer:
        it moves when that transfer is credited, and the credit is announced even when the
        status stays (the merchant received money). Only money taken back (a reversal)
        reopens it, and then a transfer still waiting for confirmations counts."""
        if deposit.currency != invoice.payer_currency:
            return
        was_final = is_final(invoice.status)
        pending = (not was_final or taken_back) and await session.scalar(
            select(
                exists().where(
                    Deposit.invoice_id == invoice.id,
                    Deposit.status == SEEN,
                    Deposit.currency == invoice.payer_currency,
                )
            )
        )
        changed = self.invoices.settle(invoice, now, pending=bool(pending))
        if changed or (report_late and was_final):
            await self.invoices.announce(session, invoice)

    @staticmethod
    async def _read_received(session: AsyncSession, invoice: Invoice) -> None:
        """The invoice's received commission and merchant amount, from the journal
        transactions of its credited deposits."""
        await session.flush()
        commissions = (
            await session.scalars(
                select(Posting.amount)
                .join(Account, Account.id == Posting.account_id)
                .join(Deposit, Deposit.credit_transaction_id == Posting.transaction_id)
                .where(
                    Deposit.invoice_id == invoice.id,
                    Deposit.status == CREDITED,
                    Deposit.currency == invoice.payer_currency,
                    Account.kind == AccountKind.PLATFORM_COMMISSION.value,
                )
            )
        ).all()
        if not invoice.payment_amount:
            invoice.received_commission = invoice.received_merchant_amount = None
            return
        commission = sum(commissions, Decimal(0))
        invoice.received_commission = commission
        invoice.received_merchant_amount = MONEY.subtract(invoice.payment_amount, commission)

    @staticmethod
    async def _invoice(session: AsyncSession, deposit: Deposit) -> Invoice | None:
        if deposit.invoice_id is None:
            return None
        return await session.get_one(Invoice, deposit.invoice_id, with_for_update=True)

    @staticmethod
    async def _status_of(session: AsyncSession, deposit: Deposit) -> str | None:
        """The status of the deposit's invoice, from the session (observe loaded it)."""
        if deposit.invoice_id is None:
            return None
        invoice = await session.get(Invoice, deposit.invoice_id)
        return invoice.status if invoice is not None else None

    # ------------------------------------------------------------------ helpers
    async def _credit_legs(
        self, session: AsyncSession, deposit: Deposit, commission: Decimal
    ) -> list[ledger.Leg]:
        """Holdings up by the amount; the merchant gets it less commission, first paying
        back any debt a reversal left."""
        currency, merchant = deposit.currency, deposit.merchant_id
        book = ledger.ledger_book(deposit.network)
        holdings = await ledger.account(
            session, AccountKind.ONCHAIN_HOLDINGS, currency, network=deposit.network
        )
        business = await ledger.account(
            session, AccountKind.MERCHANT_BUSINESS, currency, owner=merchant, network=book
        )
        revenue = await ledger.account(
            session, AccountKind.PLATFORM_COMMISSION, currency, network=book
        )
        merchant_part = MONEY.subtract(deposit.amount, commission)
        legs = [
            ledger.Leg(holdings, -deposit.amount),
            ledger.Leg(revenue, commission),
        ]
        debt_account = await ledger.find_account(
            session, AccountKind.MERCHANT_DEBT, currency, owner=merchant, network=book
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
