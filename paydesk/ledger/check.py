"""`paydesk ledger check`: every invariant of the ledger, over the whole database.

Arithmetic is done here in `Decimal` rather than in SQL, because SQLite would sum the
stored decimal text as floating point.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.deposits.models import Deposit
from paydesk.deposits.service import CREDITED, ORPHANED, REVERSED, SEEN, credit_reference
from paydesk.invoices.models import Invoice
from paydesk.ledger.models import (
    NEVER_NEGATIVE,
    Account,
    AccountKind,
    JournalTransaction,
    Posting,
)
from paydesk.money import MONEY
from paydesk.payouts.models import Payout
from paydesk.payouts.service import SETTLED_STAGES

#: Violations listed in full; beyond this only counted.
SHOWN = 50


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    detail: str


@dataclass
class Report:
    accounts: int = 0
    transactions: int = 0
    postings: int = 0
    deposits: int = 0
    violations: list[Violation] = field(default_factory=list)
    more: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, rule: str, detail: str) -> None:
        if len(self.violations) < SHOWN:
            self.violations.append(Violation(rule, detail))
        else:
            self.more += 1


async def count_postings(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Posting)) or 0)


async def check_ledger(
    session: AsyncSession, progress: Callable[[int], None] | None = None
) -> Report:
    report = Report()
    accounts = {a.id: a for a in await session.scalars(select(Account))}
    report.accounts = len(accounts)
    transactions = {t.id: t for t in await session.scalars(select(JournalTransaction))}
    report.transactions = len(transactions)

    sums: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    legs: dict[int, int] = defaultdict(int)
    running: dict[int, Decimal] = defaultdict(Decimal)
    rows = await session.stream(
        select(Posting.id, Posting.transaction_id, Posting.account_id, Posting.amount,
               Posting.balance_after)
        .order_by(Posting.id)
        .execution_options(yield_per=2000)
    )  # fmt: skip
    async for posting_id, transaction_id, account_id, amount, balance_after in rows:
        report.postings += 1
        if progress and report.postings % 1000 == 0:
            progress(1000)
        account = accounts.get(account_id)
        if account is None or transaction_id not in transactions:
            report.add("dangling", f"posting {posting_id} points at nothing")
            continue
        sums[(transaction_id, account.currency)] = MONEY.add(
            sums[(transaction_id, account.currency)], amount
        )
        legs[transaction_id] += 1
        running[account_id] = MONEY.add(running[account_id], amount)
        if running[account_id] != balance_after:
            report.add(
                "running total",
                f"posting {posting_id}: account {account.uuid} totals {running[account_id]}, "
                f"the posting says {balance_after}",
            )
            running[account_id] = balance_after  # report each break once
        if account.kind in NEVER_NEGATIVE and account.sign * balance_after < 0:
            report.add(
                "negative balance",
                f"posting {posting_id}: {account.kind} {account.currency} {account.uuid} "
                f"at {account.sign * balance_after}",
            )
    if progress:
        progress(report.postings % 1000)

    for (transaction_id, currency), total in sums.items():
        if total != 0:
            reference = transactions[transaction_id].reference
            report.add("unbalanced", f"transaction {reference}: {currency} sums to {total}")
    for transaction_id, transaction in transactions.items():
        if legs.get(transaction_id, 0) < 2:
            report.add("single leg", f"transaction {transaction.reference} has fewer than 2 legs")

    await _check_deposits(session, report, transactions)
    await _check_payout_reserves(session, report, accounts, running)
    return report


async def _check_payout_reserves(
    session: AsyncSession,
    report: Report,
    accounts: dict[int, Account],
    totals: dict[int, Decimal],
) -> None:
    """Each payout reserve holds exactly what the payouts not yet paid or failed took."""
    held: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for merchant_id, book, currency, amount in await session.execute(
        select(
            Payout.merchant_id, Payout.book, Payout.source_currency, Payout.merchant_amount
        ).where(Payout.stage.not_in(SETTLED_STAGES))
    ):
        key = (str(merchant_id), book, currency)
        held[key] = MONEY.add(held[key], amount)
    for account_id, account in accounts.items():
        if account.kind != AccountKind.PAYOUT_RESERVE:
            continue
        key = (account.owner, account.network, account.currency)
        expected = held.pop(key, Decimal(0))
        if totals.get(account_id, Decimal(0)) != expected:
            report.add(
                "payout reserve",
                f"reserve {account.currency} of {account.owner} holds "
                f"{totals.get(account_id, Decimal(0))}, open payouts took {expected}",
            )
    for (owner, _book, currency), expected in held.items():
        report.add("payout reserve", f"open payouts of {owner} took {expected} {currency}, "
                   "no reserve holds it")  # fmt: skip


async def _check_deposits(
    session: AsyncSession, report: Report, transactions: dict[int, JournalTransaction]
) -> None:
    """Each deposit booked as it says, and each invoice's received total equal to its
    deposits that count."""
    for deposit in await session.scalars(select(Deposit)):
        report.deposits += 1
        name = f"{deposit.network}:{deposit.txid}:{deposit.output_index}"
        credit = transactions.get(deposit.credit_transaction_id or -1)
        if deposit.status in (SEEN, ORPHANED):
            if credit is not None:
                report.add("deposit", f"unconfirmed deposit {name} has a credit transaction")
            continue
        if credit is None or credit.reference != credit_reference(deposit):
            report.add("deposit", f"deposit {name} has no matching credit transaction")
        if deposit.status == REVERSED:
            reversal = transactions.get(deposit.reversal_transaction_id or -1)
            if reversal is None or credit is None or reversal.reverses_id != credit.id:
                report.add("deposit", f"reversed deposit {name} has no matching reversal")
    invoices = await session.execute(
        select(Invoice.id, Invoice.uuid, Invoice.payment_amount)
        .where(Invoice.payment_amount.is_not(None))
    )  # fmt: skip
    counted = await _counted_deposits(session)
    for invoice_id, invoice_uuid, payment_amount in invoices:
        if payment_amount != counted.get(invoice_id, Decimal(0)):
            report.add(
                "invoice total",
                f"invoice {invoice_uuid}: received {payment_amount}, deposits say "
                f"{counted.get(invoice_id, Decimal(0))}",
            )


async def _counted_deposits(session: AsyncSession) -> dict[int, Decimal]:
    """Credited deposits in each invoice's own coin (the ones its status counts)."""
    rows = await session.execute(
        select(Deposit.invoice_id, Deposit.amount)
        .join(Invoice, Invoice.id == Deposit.invoice_id)
        .where(Deposit.status == CREDITED, Deposit.currency == Invoice.payer_currency)
    )
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for invoice_id, amount in rows:
        totals[invoice_id] = MONEY.add(totals[invoice_id], amount)
    return totals
