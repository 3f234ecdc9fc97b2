"""What a merchant's statistics page shows: money received per day, invoices by status.

Amounts are summed in Python with `Decimal`: on SQLite an amount is text, so SQL `SUM`
would go through floats there. A window is a range of whole UTC days.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.chains.devnet import DEVNET
from paydesk.deposits.models import Deposit
from paydesk.deposits.service import CREDITED
from paydesk.invoices.models import Invoice
from paydesk.invoices.status import InvoiceStatus
from paydesk.money import HUNDRED, MONEY, ZERO

#: The longest window one page may ask for (a leap year), so one request stays cheap.
MAX_DAYS = 366
#: Invoices that count as paid for the conversion rate: settled for the full amount.
PAID_STATUSES: frozenset[str] = frozenset({InvoiceStatus.PAID, InvoiceStatus.PAID_OVER})


@dataclass(frozen=True, slots=True)
class CurrencyVolume:
    """Money received in one currency, real or test (devnet) money, per day."""

    currency: str
    #: True for test money (received over the built-in devnet network).
    test: bool
    #: Aligned with `Statistics.days`; zero on days without money.
    per_day: list[Decimal]
    total: Decimal


@dataclass(frozen=True, slots=True)
class Statistics:
    #: Every UTC day of the window, oldest first.
    days: list[date]
    #: Real money first, then test money; by currency within each.
    volume: list[CurrencyVolume]
    #: Invoices created in the window, per status: every status, in `InvoiceStatus` order.
    counts: dict[str, int]
    created: int
    paid: int
    #: paid / created in percent, one decimal; None when nothing was created.
    conversion: Decimal | None


def window_days(since: date, until: date) -> list[date]:
    """The days from `since` to `until` inclusive; ValueError for a reversed or too long
    window."""
    if until < since:
        raise ValueError("the window ends before it starts")
    length = (until - since).days + 1
    if length > MAX_DAYS:
        raise ValueError(f"the window is longer than {MAX_DAYS} days")
    return [since + timedelta(days=offset) for offset in range(length)]


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


async def merchant_statistics(
    session: AsyncSession, merchant_id: uuid.UUID, *, since: date, until: date
) -> Statistics:
    """The merchant's volume and invoice counts over the UTC days `since`..`until`."""
    days = window_days(since, until)
    start, end = _start_of(since), _start_of(until + timedelta(days=1))
    counts = await _invoice_counts(session, merchant_id, start, end)
    created = sum(counts.values())
    paid = sum(count for status, count in counts.items() if status in PAID_STATUSES)
    return Statistics(
        days=days,
        volume=await _volume(session, merchant_id, days, start, end),
        counts=counts,
        created=created,
        paid=paid,
        conversion=conversion_percent(paid, created),
    )


def conversion_percent(paid: int, created: int) -> Decimal | None:
    """paid / created in percent, rounded half up to one decimal; None for no invoices."""
    if not created:
        return None
    ratio = MONEY.divide(MONEY.multiply(Decimal(paid), HUNDRED), Decimal(created))
    return ratio.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


async def _volume(
    session: AsyncSession,
    merchant_id: uuid.UUID,
    days: list[date],
    start: datetime,
    end: datetime,
) -> list[CurrencyVolume]:
    # Credited and still credited: a reversed deposit has another status. Held deposits
    # (a blocked static wallet) were not credited to the merchant.
    rows = await session.execute(
        select(Deposit.currency, Deposit.network, Deposit.amount, Deposit.credited_at).where(
            Deposit.merchant_id == merchant_id,
            Deposit.status == CREDITED,
            Deposit.held.is_(False),
            Deposit.credited_at >= start,
            Deposit.credited_at < end,
        )
    )
    index = {day: position for position, day in enumerate(days)}
    sums: defaultdict[tuple[str, bool], list[Decimal]] = defaultdict(lambda: [ZERO] * len(days))
    for currency, network, amount, credited_at in rows:
        per_day = sums[(currency, network == DEVNET)]
        position = index[credited_at.astimezone(UTC).date()]
        per_day[position] = MONEY.add(per_day[position], amount)
    volume = []
    for (currency, test), per_day in sorted(sums.items(), key=lambda item: (item[0][1], item[0])):
        total = ZERO
        for amount in per_day:
            total = MONEY.add(total, amount)
        volume.append(CurrencyVolume(currency, test, per_day, total))
    return volume


async def _invoice_counts(
    session: AsyncSession, merchant_id: uuid.UUID, start: datetime, end: datetime
) -> dict[str, int]:
    rows = await session.execute(
        select(Invoice.status, func.count())
        .where(
            Invoice.merchant_id == merchant_id,
            Invoice.created_at >= start,
            Invoice.created_at < end,
        )
        .group_by(Invoice.status)
    )
    found = {status: int(count) for status, count in rows}
    counts = {status.value: found.pop(status.value, 0) for status in InvoiceStatus}
    # A status this code does not know yet (a newer database) still counts, at the end.
    counts.update(sorted(found.items()))
    return counts
