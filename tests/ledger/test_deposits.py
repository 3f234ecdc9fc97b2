"""Crediting chain transfers: exactly once, with the status and the event, and undone."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from paydesk.db import utcnow
from paydesk.deposits.models import Deposit
from paydesk.deposits.service import UnknownAddress
from paydesk.invoices.models import Invoice
from paydesk.ledger.models import AccountKind, JournalTransaction, Posting
from paydesk.webhooks.models import WebhookEvent
from tests.ledger.conftest import (
    PAYER,
    balance_of,
    credit,
    merchant_balance,
    new_invoice,
    reload,
    reverse,
    transfer,
)


async def count(context, model) -> int:
    async with context.db.reader() as session:
        return int(await session.scalar(select(func.count()).select_from(model)))


async def events(context) -> list[WebhookEvent]:
    async with context.db.reader() as session:
        return list(await session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


async def test_exact_payment_credits_the_merchant_less_commission(context, shop):
    invoice = await new_invoice(context, shop)
    assert (invoice.payer_amount, invoice.commission) == (Decimal("100"), Decimal("1"))
    result = await credit(context, transfer(invoice, "100"))
    assert result.credited and result.status_changed
    assert await merchant_balance(context, shop) == Decimal("99")
    assert await balance_of(context, AccountKind.PLATFORM_COMMISSION) == Decimal("1")
    assert await balance_of(context, AccountKind.ONCHAIN_HOLDINGS, network="eth") == Decimal("100")
    paid = await reload(context, invoice)
    assert (paid.status, paid.payment_amount, paid.from_address) == ("paid", 100, PAYER)
    [event] = await events(context)
    assert (event.topic, event.subject_uuid, event.merchant_id) == (
        "invoice.status", invoice.uuid, shop.merchant_id,
    )  # fmt: skip
    assert event.payload["status"] == "paid" and event.payload["is_final"] is True
    assert event.payload["payment_amount"] == "100"
    assert event.payload["txid"] == result.deposit.txid


async def test_the_same_transfer_is_credited_once(context, shop):
    invoice = await new_invoice(context, shop)
    seen = transfer(invoice, "100")
    assert (await credit(context, seen)).credited
    again = await credit(context, seen)
    assert not again.credited and again.deposit.txid == seen.txid
    assert await merchant_balance(context, shop) == Decimal("99")
    assert await count(context, Deposit) == 1
    assert await count(context, JournalTransaction) == 1
    assert len(await events(context)) == 1


async def test_concurrent_credits_of_one_transfer(context, shop):
    invoice = await new_invoice(context, shop)
    seen = transfer(invoice, "100")
    results = await asyncio.gather(*(credit(context, seen) for _ in range(6)))
    assert sum(r.credited for r in results) == 1
    assert await merchant_balance(context, shop) == Decimal("99")
    assert await count(context, JournalTransaction) == 1


async def test_underpayment_waits_then_tops_up(context, shop):
    invoice = await new_invoice(context, shop)
    first = await credit(context, transfer(invoice, "40"))
    assert first.status_changed
    assert (await reload(context, invoice)).status == "wrong_amount_waiting"
    assert await merchant_balance(context, shop) == Decimal("39.6")  # 1 % of 40 = 0.4
    await credit(context, transfer(invoice, "60"))
    assert (await reload(context, invoice)).status == "paid"
    assert await merchant_balance(context, shop) == Decimal("99")
    assert [e.payload["status"] for e in await events(context)] == ["wrong_amount_waiting", "paid"]


async def test_underpayment_without_top_up_is_final(context, shop):
    invoice = await new_invoice(context, shop, is_payment_multiple=False)
    await credit(context, transfer(invoice, "40"))
    assert (await reload(context, invoice)).status == "wrong_amount"


async def test_overpayment_and_accuracy(context, shop):
    over = await new_invoice(context, shop, order_id="over")
    await credit(context, transfer(over, "100.5"))
    paid_over = await reload(context, over)
    assert paid_over.status == "paid_over"
    # Quoted 99 + 1; what the ledger booked for 100.5 is 99.495 + 1.005.
    assert (paid_over.merchant_amount, paid_over.commission) == (99, 1)
    assert (paid_over.merchant_amount_now, paid_over.commission_now) == (
        Decimal("99.495"), Decimal("1.005")
    )  # fmt: skip
    tolerant = await new_invoice(
        context, shop, order_id="tol", accuracy_payment_percent=Decimal("2")
    )
    await credit(context, transfer(tolerant, "98"))
    assert (await reload(context, tolerant)).status == "paid"
    # 1 % commission, proportional to what arrived: 100.5 → 1.005, 98 → 0.98.
    assert await balance_of(context, AccountKind.PLATFORM_COMMISSION) == Decimal("1.985")


async def test_money_after_settlement_is_credited_and_reported(context, shop):
    invoice = await new_invoice(context, shop)
    await credit(context, transfer(invoice, "100"))
    extra = await credit(context, transfer(invoice, "5"))
    assert extra.credited and extra.status_changed
    assert (await reload(context, invoice)).status == "paid_over"
    assert await merchant_balance(context, shop) == Decimal("103.95")
    more = await credit(context, transfer(invoice, "1"))
    assert more.credited and not more.status_changed
    # paid, paid_over, and paid_over again with the new total: every credit is announced.
    assert [e.payload["status"] for e in await events(context)] == [
        "paid", "paid_over", "paid_over"
    ]  # fmt: skip


async def test_another_coin_to_the_address_is_credited_in_that_coin(context, shop):
    invoice = await new_invoice(context, shop)
    result = await credit(context, transfer(invoice, "7", currency="USDC"))
    assert result.credited and not result.status_changed
    assert await merchant_balance(context, shop, "USDC") == Decimal("7")
    assert (await reload(context, invoice)).status == "check"


async def test_unknown_address_is_refused_and_nothing_is_written(context, shop):
    invoice = await new_invoice(context, shop)
    stray = dataclasses.replace(
        transfer(invoice, "1"), address="0x000000000000000000000000000000000000dEaD"
    )
    with pytest.raises(UnknownAddress):
        await credit(context, stray)
    assert await count(context, Deposit) == 0


async def test_reversal_restores_everything(context, shop):
    invoice = await new_invoice(context, shop)
    seen = transfer(invoice, "100")
    await credit(context, seen)
    assert await reverse(context, seen)
    assert not await reverse(context, seen)  # once
    assert await merchant_balance(context, shop) == 0
    assert await balance_of(context, AccountKind.PLATFORM_COMMISSION) == 0
    assert await balance_of(context, AccountKind.ONCHAIN_HOLDINGS, network="eth") == 0
    back = await reload(context, invoice)
    assert (back.status, back.payment_amount, back.txid) == ("check", 0, None)
    assert [e.payload["status"] for e in await events(context)] == ["paid", "check"]
    async with context.db.reader() as session:
        reversal = await session.scalar(
            select(JournalTransaction).where(JournalTransaction.kind == "deposit_reversal")
        )
        assert reversal is not None and reversal.reverses_id is not None


async def test_reversal_of_one_of_two_deposits(context, shop):
    invoice = await new_invoice(context, shop)
    first, second = transfer(invoice, "60"), transfer(invoice, "40")
    await credit(context, first)
    await credit(context, second)
    await reverse(context, second)
    assert (await reload(context, invoice)).status == "wrong_amount_waiting"
    assert await merchant_balance(context, shop) == Decimal("59.4")


async def test_reversal_of_the_only_part_payment(context, shop):
    """Found by the property test: an underpaid invoice whose deposit is reversed is
    unpaid again."""
    invoice = await new_invoice(context, shop)
    seen = transfer(invoice, "40")
    await credit(context, seen)
    await reverse(context, seen)
    assert (await reload(context, invoice)).status == "check"


async def test_reversal_after_expiry_cancels(context, shop):
    invoice = await new_invoice(context, shop)
    seen = transfer(invoice, "100")
    await credit(context, seen)
    async with context.db.transaction() as session:
        await session.execute(
            update(Invoice).where(Invoice.id == invoice.id)
            .values(expired_at=utcnow() - timedelta(seconds=1))
        )  # fmt: skip
    await reverse(context, seen)
    assert (await reload(context, invoice)).status == "cancel"


async def test_reversal_the_balance_cannot_cover_becomes_debt_and_is_repaid(context, shop):
    paid = await new_invoice(context, shop, order_id="a")
    seen = transfer(paid, "100")
    await credit(context, seen)
    # The merchant moves 90 of its 99 to its personal wallet before the reorg.
    async with context.db.transaction() as session:
        await context.balances.transfer(
            session, shop.merchant_id, "USDT", Decimal("90"), to_personal=True
        )
    await reverse(context, seen)
    assert await merchant_balance(context, shop) == 0
    debt = await balance_of(context, AccountKind.MERCHANT_DEBT, owner=shop.merchant_id)
    assert debt == Decimal("90")
    # The next deposit pays the debt first.
    later = await new_invoice(context, shop, order_id="b")
    await credit(context, transfer(later, "100"))
    assert await balance_of(context, AccountKind.MERCHANT_DEBT, owner=shop.merchant_id) == 0
    assert await merchant_balance(context, shop) == Decimal("9")


async def test_postings_are_append_only(context, shop):
    invoice = await new_invoice(context, shop)
    await credit(context, transfer(invoice, "100"))
    for statement in (update(Posting).values(amount=Decimal("1")), Posting.__table__.delete()):
        with pytest.raises(Exception, match="immutable"):
            async with context.db.transaction() as session:
                await session.execute(statement)


async def test_a_failure_after_booking_leaves_nothing(context, shop, monkeypatch):
    """The booking, the status and the event are one transaction: if the event cannot be
    written, the money is not booked either (the watcher will try again)."""
    invoice = await new_invoice(context, shop)

    async def broken(*args, **kwargs):
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr("paydesk.invoices.service.webhooks.record", broken)
    with pytest.raises(RuntimeError):
        await credit(context, transfer(invoice, "100"))
    assert await count(context, Deposit) == 0
    assert await count(context, Posting) == 0
    assert (await reload(context, invoice)).status == "check"
    monkeypatch.undo()
    assert (await credit(context, transfer(invoice, "100"))).credited
