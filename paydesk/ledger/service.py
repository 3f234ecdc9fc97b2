"""Booking movements and reading balances.

`post` is the only writer: it checks that the legs balance per currency, locks the
accounts it touches (in id order, so concurrent bookings cannot deadlock), refuses to take
a never-negative account below zero, and appends the postings with their running totals.
The caller owns the database transaction, so a booking commits or rolls back together
with whatever caused it (an invoice's status, its webhook event).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.db import dialect_insert, utcnow
from paydesk.ledger.models import NEVER_NEGATIVE, Account, AccountKind, JournalTransaction, Posting
from paydesk.money import MONEY, ZERO


class LedgerError(Exception):
    pass


class Unbalanced(LedgerError):
    """The legs of a transaction do not sum to zero in some currency."""


class AlreadyBooked(LedgerError):
    """A transaction with this reference exists: the event was booked before."""


class InsufficientFunds(LedgerError):
    def __init__(self, account: Account, available: Decimal, needed: Decimal) -> None:
        super().__init__(f"{account.kind} {account.currency}: {available} < {needed}")
        self.account = account
        self.available = available
        self.needed = needed


@dataclass(frozen=True, slots=True)
class Leg:
    account: Account
    #: + credits the account, − debits it.
    amount: Decimal


@dataclass(frozen=True, slots=True)
class PostingEntry:
    """One line of an account's history: the posting and the transaction it is part of
    (its kind and memo say what the movement was)."""

    posting: Posting
    transaction: JournalTransaction


@dataclass(frozen=True, slots=True)
class Booked:
    transaction: JournalTransaction
    postings: list[Posting]

    def posting_of(self, account: Account) -> Posting:
        return next(p for p in self.postings if p.account_id == account.id)


def ledger_book(network: str) -> str:
    """Which book a network's money is kept in: "" for live money, the network's code
    for test money (devnet), so test balances never mix with live ones."""
    return network if network == "devnet" else ""


async def account(
    session: AsyncSession,
    kind: AccountKind,
    currency: str,
    *,
    owner: uuid.UUID | str = "",
    network: str = "",
) -> Account:
    """The account, created on first use (concurrent first uses make one)."""
    key = {"kind": kind.value, "owner": str(owner), "network": network, "currency": currency}
    found = await session.scalar(select(Account).filter_by(**key))
    if found is not None:
        return found
    await session.execute(
        dialect_insert(session, Account)
        .values(**key, uuid=uuid.uuid4(), created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["kind", "owner", "network", "currency"])
    )
    created = await session.scalar(select(Account).filter_by(**key))
    assert created is not None
    return created


async def find_account(
    session: AsyncSession,
    kind: AccountKind,
    currency: str,
    *,
    owner: uuid.UUID | str = "",
    network: str = "",
) -> Account | None:
    return await session.scalar(
        select(Account).filter_by(
            kind=kind.value, owner=str(owner), network=network, currency=currency
        )
    )


async def credit_total(session: AsyncSession, account: Account) -> Decimal:
    """The account's running credit total (its balance is `sign` × this)."""
    last = await session.scalar(
        select(Posting.balance_after)
        .where(Posting.account_id == account.id)
        .order_by(Posting.id.desc())
        .limit(1)
    )
    return last if last is not None else ZERO


async def credit_totals(session: AsyncSession, account_ids: list[int]) -> dict[int, Decimal]:
    """The running credit totals of several accounts in one query."""
    latest = (
        select(Posting.balance_after)
        .where(Posting.account_id == Account.id)
        .order_by(Posting.id.desc())
        .limit(1)
        .correlate(Account)
        .scalar_subquery()
    )
    rows = await session.execute(select(Account.id, latest).where(Account.id.in_(account_ids)))
    return {account_id: total if total is not None else ZERO for account_id, total in rows}


async def balance(session: AsyncSession, account: Account) -> Decimal:
    return account.sign * await credit_total(session, account)


async def post(
    session: AsyncSession,
    kind: str,
    reference: str,
    legs: Sequence[Leg],
    *,
    reverses: JournalTransaction | None = None,
    memo: str | None = None,
) -> Booked:
    """Book one balanced transaction, or raise without writing anything."""
    legs = [leg for leg in legs if leg.amount != 0]
    if len(legs) < 2:
        raise Unbalanced("a transaction needs at least two non-zero legs")
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for leg in legs:
        if not leg.amount.is_finite():
            raise Unbalanced("amounts must be finite")
        sums[leg.account.currency] = MONEY.add(sums[leg.account.currency], leg.amount)
    if any(total != 0 for total in sums.values()):
        raise Unbalanced(f"legs do not sum to zero: {dict(sums)}")

    accounts = {leg.account.id: leg.account for leg in legs}
    # Row locks in a fixed order serialise bookings on the same accounts (PostgreSQL;
    # SQLite's write transactions are serial already). NO KEY UPDATE, not UPDATE: rows
    # that reference an account (a payout, a posting) take a key-share lock on it, which
    # a full update lock would conflict with — two transactions that each inserted such
    # a row and then booked on the account would deadlock.
    await session.execute(
        select(Account.id).where(Account.id.in_(sorted(accounts))).order_by(Account.id)
        .with_for_update(key_share=True)
    )  # fmt: skip
    totals = await credit_totals(session, list(accounts))
    after = dict(totals)
    for leg in legs:
        after[leg.account.id] = MONEY.add(after[leg.account.id], leg.amount)
    for account_id, total in after.items():
        held = accounts[account_id]
        if held.kind in NEVER_NEGATIVE and held.sign * total < 0:
            available = held.sign * totals[account_id]
            raise InsufficientFunds(held, available, available - held.sign * total)

    now = utcnow()
    values = {
        "uuid": uuid.uuid4(),
        "kind": kind,
        "reference": reference,
        "reverses_id": reverses.id if reverses else None,
        "memo": memo,
        "created_at": now,
    }
    inserted = await session.execute(
        dialect_insert(session, JournalTransaction)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["reference"])
        .returning(JournalTransaction.id)
    )
    transaction_id = inserted.scalar()
    if transaction_id is None:
        raise AlreadyBooked(reference)
    # What was just written, not read back (the accounts stay locked meanwhile).
    transaction = JournalTransaction(id=transaction_id, **values)
    rows = []
    running = dict(totals)
    for leg in legs:
        running[leg.account.id] = MONEY.add(running[leg.account.id], leg.amount)
        rows.append(
            {
                "uuid": uuid.uuid4(),
                "transaction_id": transaction_id,
                "account_id": leg.account.id,
                "amount": leg.amount,
                "balance_after": running[leg.account.id],
                "created_at": now,
            }
        )
    # One statement for all legs, without the unit of work: the accounts are locked until
    # the commit, so every step saved here is time other bookings on them do not wait.
    await session.execute(insert(Posting), rows)
    return Booked(transaction, [Posting(**row) for row in rows])


async def legs_of(session: AsyncSession, transaction: JournalTransaction) -> list[Leg]:
    rows = await session.execute(
        select(Posting.amount, Account)
        .join(Account, Account.id == Posting.account_id)
        .where(Posting.transaction_id == transaction.id)
        .order_by(Posting.id)
    )
    return [Leg(account, amount) for amount, account in rows.all()]


async def postings_page(
    session: AsyncSession, account_ids: Sequence[int], *, limit: int, before: int | None = None
) -> list[PostingEntry]:
    """The accounts' postings, newest first, each with its transaction: a wallet history.
    `before` is the id of the last posting already shown, so the next page is a range
    read on the (account_id, id) index whatever its depth, never an OFFSET."""
    if not account_ids:
        return []
    query = (
        select(Posting, JournalTransaction)
        .join(JournalTransaction, JournalTransaction.id == Posting.transaction_id)
        .where(Posting.account_id.in_(account_ids))
        .order_by(Posting.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(Posting.id < before)
    return [
        PostingEntry(posting, transaction) for posting, transaction in await session.execute(query)
    ]
