"""The business and personal wallets of the API: ledger accounts seen from a merchant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.catalogue.service import Catalogue, OutOfLimits
from paydesk.ledger import service as ledger
from paydesk.ledger.models import Account, AccountKind
from paydesk.merchants.models import Merchant
from paydesk.money import MONEY, quantum


class TransferRefused(Exception):
    pass


class CurrencyNotServed(TransferRefused):
    pass


class TooManyDecimals(TransferRefused):
    def __init__(self, currency: str, places: int) -> None:
        super().__init__(f"{currency} amounts have at most {places} decimals")
        self.currency = currency
        self.places = places


class TransferOutOfRange(OutOfLimits, TransferRefused):
    pass


@dataclass(frozen=True, slots=True)
class Wallet:
    uuid: uuid.UUID
    currency: str
    balance: Decimal


@dataclass(frozen=True, slots=True)
class Wallets:
    business: list[Wallet]
    personal: list[Wallet]


@dataclass(frozen=True, slots=True)
class TransferResult:
    personal_posting: uuid.UUID
    personal_balance: Decimal
    business_posting: uuid.UUID
    business_balance: Decimal


class Balances:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    async def wallets(self, session: AsyncSession, merchant_id: uuid.UUID) -> Wallets:
        """The merchant's business wallets and its owner's personal ones, every currency
        that has an account, each balance read from the ledger."""
        user_id = await self._owner(session, merchant_id)
        rows = await session.scalars(
            select(Account)
            .where(
                Account.network == "",  # live money only: devnet's test book stays apart
                (
                    (Account.kind == AccountKind.MERCHANT_BUSINESS.value)
                    & (Account.owner == str(merchant_id))
                )
                | (
                    (Account.kind == AccountKind.USER_PERSONAL.value)
                    & (Account.owner == str(user_id))
                ),
            )
            .order_by(Account.currency)
        )
        business, personal = [], []
        for account in rows:
            wallet = Wallet(account.uuid, account.currency, await ledger.balance(session, account))
            (business if account.kind == AccountKind.MERCHANT_BUSINESS else personal).append(wallet)
        return Wallets(business, personal)

    async def transfer(
        self,
        session: AsyncSession,
        merchant_id: uuid.UUID,
        currency: str,
        amount: Decimal,
        *,
        to_personal: bool,
    ) -> TransferResult:
        """Move funds between the merchant's business wallet and its owner's personal
        one. Raises `ledger.InsufficientFunds` when the source cannot cover it; the
        source's row lock makes concurrent transfers queue, never overdraw."""
        code = currency.upper()
        if not self.catalogue.is_crypto(code):
            raise CurrencyNotServed(code)
        places = self.catalogue.precision(code)
        # In the money context: the default 28 digits cannot quantize a 30-digit amount.
        if amount != amount.quantize(quantum(places), context=MONEY):
            raise TooManyDecimals(code, places)
        self.catalogue.check_limits(amount, code, error=TransferOutOfRange)

        user_id = await self._owner(session, merchant_id)
        business = await ledger.account(
            session, AccountKind.MERCHANT_BUSINESS, code, owner=merchant_id
        )
        personal = await ledger.account(session, AccountKind.USER_PERSONAL, code, owner=user_id)
        source, target = (business, personal) if to_personal else (personal, business)
        booked = await ledger.post(
            session,
            "transfer_to_personal" if to_personal else "transfer_to_business",
            f"transfer:{uuid.uuid4()}",
            [ledger.Leg(source, -amount), ledger.Leg(target, amount)],
        )
        personal_posting = booked.posting_of(personal)
        business_posting = booked.posting_of(business)
        return TransferResult(
            personal_posting=personal_posting.uuid,
            personal_balance=personal.sign * personal_posting.balance_after,
            business_posting=business_posting.uuid,
            business_balance=business.sign * business_posting.balance_after,
        )

    @staticmethod
    async def _owner(session: AsyncSession, merchant_id: uuid.UUID) -> uuid.UUID:
        user_id = await session.scalar(select(Merchant.user_id).where(Merchant.id == merchant_id))
        if user_id is None:
            raise TransferRefused(f"no merchant {merchant_id}")
        return user_id
