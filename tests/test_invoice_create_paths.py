"""The two ways an invoice is created must be indistinguishable: the one-statement path
(PostgreSQL, a new order) and the transactional path (everything else)."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest
from sqlalchemy import func, select

from paydesk.chains.models import DepositAddress
from paydesk.invoices.models import Invoice
from paydesk.invoices.schemas import CoinChoice, InvoiceDraft

pytestmark = pytest.mark.usefixtures("database")

IDENTITY = {"id", "uuid", "order_id", "address", "expired_at", "created_at", "updated_at"}


@pytest.fixture
def alone(context):
    if not context.db.runs_alone:
        pytest.skip("single-statement creation is a PostgreSQL path")
    return context


async def merchant_id(context) -> object:
    from paydesk.merchants.service import create_merchant

    async with context.db.transaction() as session:
        issued = await create_merchant(session, context.vault, name="shop", email="a@b.example")
    return issued.merchant_id


async def load(context, order_id: str) -> Invoice | None:
    async with context.db.sessionmaker() as session:
        return await session.scalar(select(Invoice).where(Invoice.order_id == order_id))


async def assigned_count(context) -> int:
    async with context.db.sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(DepositAddress)
                .where(DepositAddress.assigned_at.is_not(None))
            )
        )


async def stock_pool(context) -> None:
    async with context.db.transaction() as session:
        await context.addresses.top_up(session, "devnet", low_water=10, target=10)


def draft(order_id: str, **fields) -> InvoiceDraft:
    values = {
        "amount": Decimal("12345.12345678"),
        "currency": "USDT",
        "order_id": order_id,
        "network": "devnet",
        "discount_percent": -5,
        "accuracy_payment_percent": Decimal("1.5"),
        "url_callback": "https://shop.example/ipn",
        "currencies": [CoinChoice("USDT", "devnet"), CoinChoice("BTC")],
        "additional_data": "ünïcode ✓",
    }
    values.update(fields)
    return InvoiceDraft(**values)


@pytest.mark.parametrize("fields", [{}, {"currency": "USD", "network": None}])
async def test_both_paths_store_the_same_row(alone, fields):
    shop = await merchant_id(alone)
    await stock_pool(alone)
    made = await alone.invoices.create_alone(alone.db, shop, draft("alone", **fields))
    assert made is not None and made.id
    async with alone.db.transaction() as session:
        await alone.invoices.create(session, shop, draft("session", **fields))
    first, second = await load(alone, "alone"), await load(alone, "session")
    columns = [c.key for c in Invoice.__table__.columns if c.key not in IDENTITY]
    assert {c: getattr(first, c) for c in columns} == {c: getattr(second, c) for c in columns}
    assert first.amount == made.amount and first.address == made.address
    assert first.currencies == [
        {"currency": "USDT", "network": "devnet"},
        {"currency": "BTC", "network": None},
    ]
    if fields:
        assert first.address is None
    else:
        assert first.address and first.address != second.address


async def test_existing_order_gives_its_address_back(alone):
    shop = await merchant_id(alone)
    await stock_pool(alone)
    assert await alone.invoices.create_alone(alone.db, shop, draft("o")) is not None
    assert await assigned_count(alone) == 1
    assert await alone.invoices.create_alone(alone.db, shop, draft("o")) is None
    assert await assigned_count(alone) == 1


async def test_empty_pool_leaves_the_work_to_the_transaction(alone):
    shop = await merchant_id(alone)
    assert await alone.invoices.create_alone(alone.db, shop, draft("o")) is None
    assert await load(alone, "o") is None
    async with alone.db.transaction() as session:
        result = await alone.invoices.create(session, shop, draft("o"))
    assert result.created and result.invoice.address
    assert await assigned_count(alone) == 1


async def test_refused_draft_leaves_the_work_to_the_transaction(alone):
    shop = await merchant_id(alone)
    assert await alone.invoices.create_alone(alone.db, shop, draft("o", currency="XYZ")) is None
    assert await load(alone, "o") is None


async def test_a_broken_connection_is_not_returned_to_the_pool(alone):
    shop = await merchant_id(alone)
    fiat = {"currency": "USD", "network": None}
    assert await alone.invoices.create_alone(alone.db, shop, draft("a", **fiat)) is not None
    url = alone.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    outsider = await asyncpg.connect(url)
    try:  # the server drops every pooled connection
        await outsider.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await outsider.close()
    try:
        with pytest.raises(Exception):  # noqa: B017 - whichever way the driver notices
            await alone.invoices.create_alone(alone.db, shop, draft("b", **fiat))
        assert await alone.invoices.create_alone(alone.db, shop, draft("c", **fiat)) is not None
    finally:  # other pooled connections died too; the fixture's clean-up needs live ones
        await alone.db.engine.dispose()
    assert await load(alone, "b") is None
