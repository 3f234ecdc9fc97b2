"""Accounts, journal transactions and their postings.

Amounts are signed from the account's point of view of a credit: a posting of +10 credits
the account, −10 debits it, and the postings of one transaction sum to zero per currency.
Postings are never changed or deleted (the database refuses); a correction is a new
transaction. Each posting also carries its account's running total, so a balance is read,
never recomputed and never edited in place.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Amount, Base, BigId, UTCDateTime, new_uuid, utcnow


class AccountKind(enum.StrEnum):
    #: What the platform owes a merchant's project (the business wallet).
    MERCHANT_BUSINESS = "merchant_business"
    #: What the platform owes a user (the personal wallet).
    USER_PERSONAL = "user_personal"
    #: Funds of a merchant set aside for payouts that are not sent yet.
    PAYOUT_RESERVE = "payout_reserve"
    #: What a merchant owes the platform (a reversed deposit the balance could not cover).
    MERCHANT_DEBT = "merchant_debt"
    #: The platform's commission income.
    PLATFORM_COMMISSION = "platform_commission"
    #: Network fees the platform pays (sweeping deposits to the hot wallet).
    NETWORK_FEE_EXPENSE = "network_fee_expense"
    #: Coins the platform holds on a network.
    ONCHAIN_HOLDINGS = "onchain_holdings"
    #: Deposits to a blocked static wallet, kept apart until refunded (owner: the wallet).
    HELD_DEPOSITS = "held_deposits"
    #: The platform's side of a payout paid from a balance in another coin.
    EXCHANGE = "exchange"
    #: What a payment processor collected for the platform (mobile money, the sandbox's
    #: test gateway), per gateway: network is the gateway's code.
    PROCESSOR_HOLDINGS = "processor_holdings"


#: Accounts whose natural balance is a debit (assets, expenses): shown as −(credit total).
DEBIT_NORMAL = frozenset(
    {
        AccountKind.MERCHANT_DEBT,
        AccountKind.NETWORK_FEE_EXPENSE,
        AccountKind.ONCHAIN_HOLDINGS,
        AccountKind.PROCESSOR_HOLDINGS,
    }
)
#: Accounts that may never show less than zero.
NEVER_NEGATIVE = frozenset(
    {
        AccountKind.MERCHANT_BUSINESS,
        AccountKind.USER_PERSONAL,
        AccountKind.PAYOUT_RESERVE,
        AccountKind.HELD_DEPOSITS,
    }
)


class Account(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (UniqueConstraint("kind", "owner", "network", "currency"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: Public id (the wallet `uuid` of the balance endpoint).
    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=new_uuid)
    kind: Mapped[str] = mapped_column(String(32))
    #: Merchant or user id as text; "" for platform accounts.
    owner: Mapped[str] = mapped_column(String(36), default="")
    #: Network of on-chain holdings. For the other kinds, the book: "" for live money,
    #: "devnet" for the test money of the built-in devnet (kept apart from live balances).
    network: Mapped[str] = mapped_column(String(32), default="")
    currency: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def sign(self) -> int:
        """+1 when the credit total is the balance, −1 when its negation is."""
        return -1 if self.kind in DEBIT_NORMAL else 1


class JournalTransaction(Base):
    __tablename__ = "ledger_transactions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=new_uuid)
    kind: Mapped[str] = mapped_column(String(32))
    #: What caused it, unique: a second attempt to book the same event fails.
    reference: Mapped[str] = mapped_column(String(200), unique=True)
    #: The transaction this one undoes (a reorganised deposit).
    reverses_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_transactions.id"), unique=True
    )
    memo: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Posting(Base):
    __tablename__ = "ledger_postings"
    __table_args__ = (Index("ix_ledger_postings_account_id_id", "account_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: Public id of this side of a movement (e.g. a transfer's two transaction uuids).
    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=new_uuid)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    #: + credits the account, − debits it.
    amount: Mapped[Decimal] = mapped_column(Amount)
    #: The account's credit total after this posting.
    balance_after: Mapped[Decimal] = mapped_column(Amount)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
