"""Static wallets: creating one per merchant reference, blocking, refunding what a blocked
one holds, and the webhook event of each deposit.

Deposits to a wallet's address take the same path into the books as an invoice's
(`paydesk.deposits`), so crediting one twice is impossible for the same reason; what differs
is where the money goes: to the merchant's balance while the wallet is active, to a held
account once it is blocked.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.catalogue.service import Catalogue
from paydesk.chains.service import AddressBook
from paydesk.db import dialect_insert, utcnow
from paydesk.deposits.models import Deposit
from paydesk.invoices.models import Invoice
from paydesk.ledger import service as ledger
from paydesk.ledger.models import Account, AccountKind
from paydesk.merchants.models import Merchant
from paydesk.money import MONEY, round_half_up
from paydesk.payouts.models import Payout
from paydesk.payouts.service import FINAL_STATUSES, PayoutError, PayoutService
from paydesk.rates.service import RatesService
from paydesk.wallets.models import ACTIVE, BLOCKED, StaticWallet
from paydesk.webhooks import service as webhooks

ADDRESS_PURPOSE = "wallet"


class WalletError(Exception):
    pass


class WalletNotFound(WalletError):
    pass


class WalletServiceNotFound(WalletError):
    """No open service for the coin and network."""


class OrderIdTaken(WalletError):
    """An invoice of the merchant already uses the order_id (they share one namespace)."""


class NotBlocked(WalletError):
    """Only a blocked wallet's deposits can be refunded."""


class AlreadyRefunded(WalletError):
    pass


class RefundInProcess(WalletError):
    pass


class NothingToWithdraw(WalletError):
    pass


@dataclass(frozen=True, slots=True)
class CreateResult:
    wallet: StaticWallet
    created: bool


class WalletService:
    def __init__(
        self,
        catalogue: Catalogue,
        rates: RatesService,
        addresses: AddressBook,
        payouts: PayoutService,
    ) -> None:
        self.catalogue = catalogue
        self.rates = rates
        self.addresses = addresses
        self.payouts = payouts

    async def create(
        self,
        session: AsyncSession,
        merchant_id: uuid.UUID,
        *,
        currency: str,
        network: str,
        order_id: str,
        url_callback: str | None = None,
        from_referral_code: str | None = None,
    ) -> CreateResult:
        """The wallet of `order_id`: the existing one, or a new one with a fresh address."""
        existing = await self._by_order(session, merchant_id, order_id)
        if existing is not None:
            return CreateResult(existing, created=False)
        service = self.catalogue.service(currency.upper(), network.lower())
        if service is None or not service.available or not self.addresses.serves(service.network):
            raise WalletServiceNotFound(f"{currency} {network}")
        taken = await session.scalar(
            select(Invoice.id).where(
                Invoice.merchant_id == merchant_id, Invoice.order_id == order_id
            )
        )
        if taken is not None:
            raise OrderIdTaken(order_id)
        address = await self.addresses.allocate(session, service.network, ADDRESS_PURPOSE,
                                                merchant_id)  # fmt: skip
        now = utcnow()
        inserted = await session.execute(
            dialect_insert(session, StaticWallet)
            .values(
                uuid=uuid.uuid4(),
                merchant_id=merchant_id,
                order_id=order_id,
                currency=service.currency,
                network=service.network,
                address=address,
                url_callback=url_callback,
                from_referral_code=from_referral_code,
                status=ACTIVE,
                force_refund=False,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["merchant_id", "order_id"])
            .returning(StaticWallet.id)
        )
        wallet_id = inserted.scalar()
        if wallet_id is None:  # a concurrent request made it first
            await self.addresses.release(session, service.network, address)
            existing = await self._by_order(session, merchant_id, order_id)
            assert existing is not None
            return CreateResult(existing, created=False)
        return CreateResult(await session.get_one(StaticWallet, wallet_id), created=True)

    async def public(
        self, session: AsyncSession, wallet_uuid: uuid.UUID
    ) -> tuple[StaticWallet, str]:
        """A wallet and its merchant's name, for the wallet's public page."""
        row = (
            await session.execute(
                select(StaticWallet, Merchant.name)
                .join(Merchant, Merchant.id == StaticWallet.merchant_id)
                .where(StaticWallet.uuid == wallet_uuid)
            )
        ).first()
        if row is None:
            raise WalletNotFound(str(wallet_uuid))
        return row[0], row[1]

    async def balance_uuid(self, session: AsyncSession, wallet: StaticWallet) -> uuid.UUID:
        """The merchant's coin balance the wallet credits (`wallet_uuid` of the API)."""
        account = await ledger.account(
            session, AccountKind.MERCHANT_BUSINESS, wallet.currency, owner=wallet.merchant_id,
            network=ledger.ledger_book(wallet.network),
        )  # fmt: skip
        return account.uuid

    async def find(
        self,
        session: AsyncSession,
        merchant_id: uuid.UUID,
        *,
        wallet_uuid: uuid.UUID | None = None,
        order_id: str | None = None,
        lock: bool = False,
    ) -> StaticWallet:
        query = select(StaticWallet).where(StaticWallet.merchant_id == merchant_id)
        if wallet_uuid is not None:
            query = query.where(StaticWallet.uuid == wallet_uuid)
        else:
            query = query.where(StaticWallet.order_id == order_id)
        found = await session.scalar(query.with_for_update() if lock else query)
        if found is None:
            raise WalletNotFound(str(wallet_uuid or order_id))
        return found

    async def block(
        self, session: AsyncSession, wallet: StaticWallet, *, force_refund: bool
    ) -> StaticWallet:
        """Stop crediting the wallet's deposits; with `force_refund`, send each one back."""
        if wallet.status != BLOCKED:
            wallet.status = BLOCKED
            wallet.blocked_at = utcnow()
        wallet.force_refund = wallet.force_refund or force_refund
        wallet.updated_at = utcnow()
        await session.flush()
        return wallet

    async def refund_blocked(
        self, session: AsyncSession, wallet: StaticWallet, address: str
    ) -> Payout:
        """Send everything the blocked wallet holds to `address`, once."""
        if wallet.status != BLOCKED:
            raise NotBlocked(str(wallet.uuid))
        if wallet.refunded_at is not None or wallet.force_refund:
            pending = await session.scalar(
                select(Payout.id).where(
                    Payout.wallet_id == wallet.id, Payout.status.not_in(FINAL_STATUSES)
                )
            )
            if pending is not None and not wallet.force_refund:
                raise RefundInProcess(str(wallet.uuid))
            raise AlreadyRefunded(str(wallet.uuid))
        held = await self._find_held(session, wallet)
        if held is None or await ledger.balance(session, held) <= 0:
            raise NothingToWithdraw(str(wallet.uuid))
        payout = await self.payouts.refund_held(
            session, wallet.merchant_id, held, wallet.network, address, wallet_id=wallet.id
        )
        wallet.refunded_at = utcnow()
        wallet.updated_at = wallet.refunded_at
        await session.flush()
        return payout

    # ---------------------------------------------------------------- deposits
    async def held_account(self, session: AsyncSession, wallet: StaticWallet) -> Account:
        return await ledger.account(
            session, AccountKind.HELD_DEPOSITS, wallet.currency, owner=wallet.uuid,
            network=ledger.ledger_book(wallet.network),
        )  # fmt: skip

    async def _find_held(self, session: AsyncSession, wallet: StaticWallet) -> Account | None:
        return await ledger.find_account(
            session, AccountKind.HELD_DEPOSITS, wallet.currency, owner=wallet.uuid,
            network=ledger.ledger_book(wallet.network),
        )  # fmt: skip

    async def send_back(
        self, session: AsyncSession, wallet: StaticWallet, deposit: Deposit
    ) -> Payout | None:
        """A force-refund wallet's deposit, back to where it came from (when the chain says
        where, and the deposit is worth more than the fee)."""
        if not deposit.from_address:
            return None
        held = await self.held_account(session, wallet)
        try:
            return await self.payouts.refund_held(
                session, wallet.merchant_id, held, wallet.network, deposit.from_address,
                wallet_id=wallet.id, amount=deposit.amount,
            )  # fmt: skip
        except PayoutError:  # too small to send back, or an address that cannot be paid
            return None

    async def announce(
        self,
        session: AsyncSession,
        wallet: StaticWallet,
        deposit: Deposit,
        status: str,
        *,
        commission: Decimal | None = None,
    ) -> None:
        """A `wallet` webhook event for one deposit, in the caller's transaction (with the
        USD value of a credited one, at the rates of now)."""
        usd = None
        if commission is not None:
            rate = (await self.rates.book()).convert(deposit.currency, "USD")
            if rate is not None:
                usd = round_half_up(MONEY.multiply(deposit.amount, rate.value), 2)
        await webhooks.record(
            session,
            merchant_id=wallet.merchant_id,
            topic=webhooks.WALLET_PAYMENT,
            subject_uuid=deposit.uuid,
            url=wallet.url_callback,
            payload=deposit_snapshot(wallet, deposit, status, commission, usd),
        )

    @staticmethod
    async def _by_order(
        session: AsyncSession, merchant_id: uuid.UUID, order_id: str
    ) -> StaticWallet | None:
        return await session.scalar(
            select(StaticWallet).where(
                StaticWallet.merchant_id == merchant_id, StaticWallet.order_id == order_id
            )
        )


def deposit_snapshot(
    wallet: StaticWallet,
    deposit: Deposit,
    status: str,
    commission: Decimal | None,
    usd: Decimal | None = None,
) -> dict[str, Any]:
    """A wallet deposit as its webhook event records it (the invoice snapshot's fields, so
    one renderer serves both)."""
    credited = commission is not None
    paid = f"{deposit.amount:f}" if credited else "0"
    return {
        "uuid": str(deposit.uuid),
        "order_id": wallet.order_id,
        "status": status,
        "is_final": status != "confirm_check",
        "amount": f"{deposit.amount:f}",
        "currency": wallet.currency,
        "payer_amount": f"{deposit.amount:f}",
        "payer_currency": deposit.currency,
        "payer_amount_exchange_rate": "1",
        "payment_amount": paid,
        "payment_amount_usd": None if usd is None else f"{usd:f}",
        "merchant_amount": f"{MONEY.subtract(deposit.amount, commission):f}" if credited else "0",
        "commission": f"{commission:f}" if credited else "0",
        "network": wallet.network,
        "address": wallet.address,
        "from": deposit.from_address,
        "txid": deposit.txid,
        "additional_data": None,
        "wallet_address_uuid": str(wallet.uuid),
    }
