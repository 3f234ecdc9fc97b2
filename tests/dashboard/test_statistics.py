"""The statistics page's numbers, on SQLite and PostgreSQL: exact sums, UTC days, only
the merchant's own money that is still credited."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from paydesk.dashboard.statistics import (
    MAX_DAYS,
    CurrencyVolume,
    conversion_percent,
    merchant_statistics,
    window_days,
)
from paydesk.deposits.models import Deposit
from paydesk.invoices.models import Invoice
from paydesk.invoices.schemas import InvoiceDraft
from paydesk.invoices.status import InvoiceStatus
from paydesk.merchants.service import create_merchant

SINCE = date(2025, 11, 1)
UNTIL = date(2025, 11, 5)
_serial = itertools.count(1)


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    """A moment in November 2025 (day 0 is 31 October)."""
    return datetime(2025, 10, 31, hour, minute, second, micro, tzinfo=UTC) + timedelta(days=day)


async def add_deposit(
    context,
    merchant_id: uuid.UUID,
    amount: str,
    credited_at: datetime | None,
    *,
    currency: str = "USDT",
    network: str = "eth",
    status: str = "credited",
    held: bool = False,
) -> None:
    number = next(_serial)
    async with context.db.transaction() as session:
        session.add(
            Deposit(
                network=network,
                txid=f"tx{number:062d}",
                output_index=0,
                address=f"addr{number}",
                currency=currency,
                amount=Decimal(amount),
                merchant_id=merchant_id,
                status=status,
                held=held,
                created_at=credited_at or at(1),
                credited_at=credited_at,
                reversed_at=credited_at + timedelta(hours=1) if status == "reversed" else None,
            )
        )


async def add_invoice(context, merchant_id: uuid.UUID, status: str, created_at: datetime) -> None:
    draft = InvoiceDraft(amount=Decimal("10"), currency="USD", order_id=f"o{next(_serial)}")
    async with context.db.transaction() as session:
        invoice = (await context.invoices.create(session, merchant_id, draft)).invoice
        await session.execute(
            update(Invoice)
            .where(Invoice.id == invoice.id)
            .values(status=status, created_at=created_at)
        )


async def statistics(context, merchant_id: uuid.UUID, since: date = SINCE, until: date = UNTIL):
    async with context.db.reader() as session:
        return await merchant_statistics(session, merchant_id, since=since, until=until)


@pytest.fixture
async def other(context):
    async with context.db.transaction() as session:
        return await create_merchant(session, context.vault, name="Other", email="o@other.test")


async def test_volume_per_day_exact_and_only_credited(context, merchant, other) -> None:
    shop = merchant.merchant_id
    # Day 1: 0.1 + 0.2 at both ends of the UTC day.
    await add_deposit(context, shop, "0.1", at(1, 0, 0, 0))
    await add_deposit(context, shop, "0.2", at(1, 23, 59, 59, 999999))
    # Day 3: 18 decimals.
    await add_deposit(context, shop, "0.123456789012345678", at(3), currency="ETH")
    await add_deposit(context, shop, "0.000000000000000001", at(3, 18), currency="ETH")
    # Day 5, the last of the window.
    await add_deposit(context, shop, "1000000.50", at(5, 23, 59, 59))
    # Test money over devnet, apart from the real USDT.
    await add_deposit(context, shop, "7", at(2), network="devnet")
    # None of these count.
    await add_deposit(context, shop, "5", at(2), status="reversed")
    await add_deposit(context, shop, "6", None, status="seen")
    await add_deposit(context, shop, "8", None, status="orphaned")
    await add_deposit(context, shop, "9", at(2), held=True)
    await add_deposit(context, shop, "10", at(0, 23, 59, 59, 999999))  # 31 October
    await add_deposit(context, shop, "11", at(6, 0, 0, 0))  # 6 November
    await add_deposit(context, other.merchant_id, "100", at(2))

    stats = await statistics(context, shop)

    assert stats.days == [date(2025, 11, day) for day in range(1, 6)]
    zero = Decimal(0)
    assert stats.volume == [
        CurrencyVolume(
            "ETH",
            False,
            [zero, zero, Decimal("0.123456789012345679"), zero, zero],
            Decimal("0.123456789012345679"),
        ),
        CurrencyVolume(
            "USDT",
            False,
            [Decimal("0.3"), zero, zero, zero, Decimal("1000000.50")],
            Decimal("1000000.80"),
        ),
        CurrencyVolume("USDT", True, [zero, Decimal(7), zero, zero, zero], Decimal(7)),
    ]
    eth, usdt, _ = stats.volume
    # Exact text, not merely equal values: no float went in between.
    assert f"{eth.total:f}" == "0.123456789012345679"
    assert f"{usdt.per_day[0]:f}" == "0.3"
    assert all(isinstance(amount, Decimal) for volume in stats.volume for amount in volume.per_day)


async def test_invoice_counts_and_conversion(context, merchant, other) -> None:
    shop = merchant.merchant_id
    await add_invoice(context, shop, "paid", at(1))
    await add_invoice(context, shop, "paid_over", at(5, 23, 59))
    await add_invoice(context, shop, "check", at(2))
    # Outside the window, or another merchant's: not counted.
    await add_invoice(context, shop, "paid", at(0, 23))
    await add_invoice(context, shop, "paid", at(6, 0))
    await add_invoice(context, other.merchant_id, "cancel", at(3))

    stats = await statistics(context, shop)

    assert list(stats.counts) == [status.value for status in InvoiceStatus]
    assert {status: n for status, n in stats.counts.items() if n} == {
        "check": 1,
        "paid": 1,
        "paid_over": 1,
    }
    assert (stats.created, stats.paid) == (3, 2)
    assert stats.conversion == Decimal("66.7")
    assert str(stats.conversion) == "66.7"
    assert stats.volume == []


async def test_empty_window(context, merchant) -> None:
    stats = await statistics(context, merchant.merchant_id, SINCE, SINCE)
    assert stats.days == [SINCE]
    assert stats.volume == []
    assert set(stats.counts.values()) == {0}
    assert (stats.created, stats.paid, stats.conversion) == (0, 0, None)


@pytest.mark.parametrize(
    ("paid", "created", "expected"),
    [(1, 3, "33.3"), (2, 3, "66.7"), (1, 16, "6.3"), (1, 8, "12.5"), (0, 5, "0.0"),
     (4, 4, "100.0"), (0, 0, None)],
)  # fmt: skip
def test_conversion_rounding(paid: int, created: int, expected: str | None) -> None:
    result = conversion_percent(paid, created)
    assert (None if result is None else str(result)) == expected


def test_window_bounds() -> None:
    assert len(window_days(SINCE, SINCE + timedelta(days=MAX_DAYS - 1))) == MAX_DAYS
    with pytest.raises(ValueError):
        window_days(SINCE, SINCE + timedelta(days=MAX_DAYS))
    with pytest.raises(ValueError):
        window_days(SINCE, SINCE - timedelta(days=1))
