"""Reading and setting a merchant's standing discounts.

Invoice creation reads them through `DiscountBook`, a short-lived per-process copy (the
same trust window as merchant keys), so a priced invoice costs no extra round trip; a
change made through this process is seen at once, by other processes within the window.
"""

from __future__ import annotations

import uuid

from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.db import Database, dialect_insert, utcnow
from paydesk.discounts.models import PaymentDiscount

#: Bounds of a percent, as for an invoice's `discount_percent`.
MIN_PERCENT, MAX_PERCENT = -99, 100

Discounts = dict[tuple[str, str], int]


async def load(session: AsyncSession, merchant_id: uuid.UUID) -> Discounts:
    """(currency, network) → percent, for the pairs the merchant set."""
    rows = await session.scalars(
        select(PaymentDiscount).where(PaymentDiscount.merchant_id == merchant_id)
    )
    return {(row.currency, row.network): row.percent for row in rows}


async def set_discount(
    session: AsyncSession, merchant_id: uuid.UUID, currency: str, network: str, percent: int
) -> None:
    if not MIN_PERCENT <= percent <= MAX_PERCENT:
        raise ValueError(f"discount percent {percent} outside {MIN_PERCENT}..{MAX_PERCENT}")
    insert = dialect_insert(session, PaymentDiscount).values(
        merchant_id=merchant_id,
        currency=currency.upper(),
        network=network.lower(),
        percent=percent,
        updated_at=utcnow(),
    )
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=[
                PaymentDiscount.merchant_id,
                PaymentDiscount.currency,
                PaymentDiscount.network,
            ],
            set_={"percent": insert.excluded.percent, "updated_at": insert.excluded.updated_at},
        )
    )


class DiscountBook:
    def __init__(self, db: Database, ttl_seconds: float, size: int = 10_000) -> None:
        self._db = db
        self._cache: TTLCache[uuid.UUID, Discounts] = TTLCache(maxsize=size, ttl=ttl_seconds)

    async def percent(self, merchant_id: uuid.UUID, currency: str, network: str) -> int:
        discounts = self._cache.get(merchant_id)
        if discounts is None:
            async with self._db.reader() as session:
                discounts = await load(session, merchant_id)
            self._cache[merchant_id] = discounts
        return discounts.get((currency.upper(), network.lower()), 0)

    def invalidate(self, merchant_id: uuid.UUID) -> None:
        self._cache.pop(merchant_id, None)
