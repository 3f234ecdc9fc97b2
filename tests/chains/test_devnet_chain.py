"""The devnet as a chain: invoices paid through its mempool and blocks, read by the watcher.

Nothing here writes a status: transfers go into the devnet's mempool, blocks are mined, and
the same watcher that follows Ethereum turns them into deposits, credits and webhooks.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from pyCryptomusAPI.webhooks import process_payment_webhook
from sqlalchemy import select, update

from paydesk.chains.devnet import FAUCET_ADDRESS, DevnetAdapter, DevnetError
from paydesk.chains.models import ChainCursor
from paydesk.chains.watcher import Watcher
from paydesk.db import utcnow
from paydesk.deposits.models import Deposit
from paydesk.invoices.models import Invoice
from paydesk.ledger import service as ledger
from paydesk.ledger.check import check_ledger
from paydesk.ledger.models import Account, AccountKind
from paydesk.webhooks.models import WebhookEvent
from paydesk.webhooks.sender import build_sender
from paydesk.webhooks.worker import deliver_due


@pytest.fixture
def settings_overrides():
    return {"callback_allowlist": ["127.0.0.0/8"]}


@pytest.fixture
async def sender(context):
    sender = build_sender(context.settings)
    yield sender
    await sender.close()


def watcher_for(context, owner="w1", confirmations=None, **kwargs) -> Watcher:
    network = context.catalogue.network("devnet")
    if confirmations is not None:
        network = dataclasses.replace(network, confirmations=confirmations)
    return Watcher(context, network, DevnetAdapter(context.db), owner=owner, **kwargs)


async def invoice_of(api, receiver=None, order_id="o1", amount="100", **extra):
    body = {"amount": amount, "currency": "USDT", "network": "devnet", "order_id": order_id}
    if receiver is not None:
        body["url_callback"] = receiver.url
    return await api.result("/v1/payment", {**body, **extra})


async def send(context, address, amount, currency="USDT"):
    async with context.db.transaction() as session:
        sent = await context.devnet.send(session, address, Decimal(amount), currency)
        return sent.txid


async def mine(context, count=1):
    async with context.db.transaction() as session:
        return await context.devnet.mine(session, count)


async def run_check(context):
    async with context.db.reader() as session:
        return await check_ledger(session)


async def status(api, invoice) -> dict:
    return await api.result("/v1/payment/info", {"uuid": invoice["uuid"]})


async def statuses(context) -> list[str]:
    async with context.db.reader() as session:
        events = await session.scalars(select(WebhookEvent).order_by(WebhookEvent.id))
        return [event.payload["status"] for event in events]


async def follow(watcher: Watcher) -> None:
    """Step until the watcher has nothing more to do."""
    for _ in range(50):
        result = await watcher.step()
        if not (result.blocks or result.rolled_back):
            return
    raise AssertionError("the watcher never caught up")


async def test_mempool_then_block_then_paid_with_signed_webhooks(
    api, context, receiver, sender, merchant
):
    invoice = await invoice_of(api, receiver, additional_data="user/42")
    watcher = watcher_for(context)
    await mine(context)
    await follow(watcher)

    txid = await send(context, invoice["address"], "100")
    await follow(watcher)  # in the mempool: seen, nothing booked
    seen = await status(api, invoice)
    assert (seen["payment_status"], seen["payment_amount"]) == ("confirm_check", "0.00000000")
    assert not seen["is_final"]

    await mine(context)
    await follow(watcher)
    paid = await status(api, invoice)
    assert paid["payment_status"] == "paid" and paid["is_final"]
    assert (paid["payment_amount"], paid["txid"], paid["from"]) == (
        "100.00000000",
        txid,
        FAUCET_ADDRESS,
    )
    assert await statuses(context) == ["confirm_check", "paid"]

    assert await deliver_due(context, sender) == 1
    assert await deliver_due(context, sender) == 1  # the next in order, once the first landed
    bodies = [json.loads(r.body) for r in receiver.received]
    assert [b["status"] for b in bodies] == ["confirm_check", "paid"]
    verified = process_payment_webhook(receiver.received[1].body, merchant.payment_key)
    assert verified.status == "paid" and verified.txid == txid
    assert bodies[1]["payment_amount"] == "100.00000000" and bodies[1]["network"] == "devnet"
    assert (await run_check(context)).ok


async def test_confirmations_keep_the_invoice_in_confirm_check(api, context):
    invoice = await invoice_of(api)
    watcher = watcher_for(context, confirmations=3)
    await mine(context)
    await send(context, invoice["address"], "100")
    await mine(context)
    await follow(watcher)
    assert (await status(api, invoice))["payment_status"] == "confirm_check"
    await mine(context)
    await follow(watcher)
    assert (await status(api, invoice))["payment_status"] == "confirm_check"
    await mine(context)  # the payment's block now has 3 confirmations
    await follow(watcher)
    assert (await status(api, invoice))["payment_status"] == "paid"
    assert await statuses(context) == ["confirm_check", "paid"]


async def test_underpay_then_top_up(api, context):
    invoice = await invoice_of(api)
    watcher = watcher_for(context)
    await mine(context)
    await send(context, invoice["address"], "60")
    await mine(context)
    await follow(watcher)
    under = await status(api, invoice)
    assert (under["payment_status"], under["payment_amount"]) == (
        "wrong_amount_waiting",
        "60.00000000",
    )
    await send(context, invoice["address"], "40")
    await follow(watcher)
    assert (await status(api, invoice))["payment_status"] == "confirm_check"
    await mine(context)
    await follow(watcher)
    assert (await status(api, invoice))["payment_status"] == "paid"
    assert await statuses(context) == [
        "wrong_amount_waiting", "confirm_check", "paid"
    ]  # fmt: skip


async def test_overpay_and_the_wrong_token(api, context, merchant):
    invoice = await invoice_of(api)
    watcher = watcher_for(context)
    await mine(context)
    await send(context, invoice["address"], "7", currency="USDC")  # not the invoice's coin
    await send(context, invoice["address"], "100.5")
    await mine(context)
    await follow(watcher)
    over = await status(api, invoice)
    assert (over["payment_status"], over["payment_amount"]) == ("paid_over", "100.50000000")
    assert (over["merchant_amount"], over["commission"]) == ("100.50000000", "0.00000000")
    async with context.db.reader() as session:
        usdc = await session.scalar(
            select(Account).filter_by(
                kind=AccountKind.MERCHANT_BUSINESS.value,
                owner=str(merchant.merchant_id),
                network="devnet",
                currency="USDC",
            )
        )
        assert await ledger.balance(session, usdc) == Decimal("7")  # credited, in the test book


async def test_payment_after_expiry_is_credited_and_reported(api, context):
    invoice = await invoice_of(api)
    watcher = watcher_for(context)
    await mine(context)
    async with context.db.transaction() as session:
        await session.execute(
            update(Invoice)
            .where(Invoice.address == invoice["address"])
            .values(expired_at=utcnow() - timedelta(seconds=1))
        )
    assert (await status(api, invoice))["payment_status"] == "cancel"
    await send(context, invoice["address"], "100")
    await follow(watcher)
    assert (await status(api, invoice))["payment_status"] == "cancel"  # final: waits for credit
    await mine(context)
    await follow(watcher)
    late = await status(api, invoice)
    assert (late["payment_status"], late["payment_amount"]) == ("paid", "100.00000000")
    assert await statuses(context) == ["cancel", "paid"]


async def test_reorganisation_reverses_then_recredits(api, context):
    invoice = await invoice_of(api)
    watcher = watcher_for(context)
    await mine(context)
    txid = await send(context, invoice["address"], "100")
    await mine(context)
    await mine(context)
    await follow(watcher)
    assert (await status(api, invoice))["payment_status"] == "paid"

    # The payment's block and the one after it are replaced; the transfer goes back to
    # the mempool and into the new branch, as on a real chain.
    async with context.db.transaction() as session:
        await context.devnet.reorganize(session, 2)
    result = await watcher.step()
    assert result.rolled_back == 2
    assert (await status(api, invoice))["payment_status"] == "check"
    await follow(watcher)
    again = await status(api, invoice)
    assert (again["payment_status"], again["txid"]) == ("paid", txid)
    assert await statuses(context) == ["paid", "check", "paid"]
    async with context.db.reader() as session:
        [deposit] = await session.scalars(select(Deposit))
        assert deposit.status == "credited"
    report = await run_check(context)
    assert report.ok, report.violations


async def test_reorganisation_that_drops_the_payment(api, context, merchant):
    invoice = await invoice_of(api)
    watcher = watcher_for(context)
    await mine(context)
    await send(context, invoice["address"], "100")
    await mine(context)
    await follow(watcher)
    async with context.db.transaction() as session:
        await context.devnet.reorganize(session, 1, drop=True)
    await follow(watcher)
    gone = await status(api, invoice)
    assert (gone["payment_status"], gone["payment_amount"]) == ("check", "0.00000000")
    assert await statuses(context) == ["paid", "check"]
    async with context.db.reader() as session:
        [deposit] = await session.scalars(select(Deposit))
        assert deposit.status == "reversed"
    assert (await run_check(context)).ok


async def test_a_mempool_transfer_that_vanishes_is_forgotten(api, context):
    invoice = await invoice_of(api)
    watcher = watcher_for(context)
    await mine(context)
    await send(context, invoice["address"], "100")
    await follow(watcher)
    assert (await status(api, invoice))["payment_status"] == "confirm_check"
    async with context.db.transaction() as session:
        await session.execute(update_mempool_to_nothing())
    await follow(watcher)
    assert (await status(api, invoice))["payment_status"] == "check"
    assert await statuses(context) == ["confirm_check", "check"]


def update_mempool_to_nothing():
    from sqlalchemy import delete

    from paydesk.chains.models import DevnetTransaction

    return delete(DevnetTransaction).where(DevnetTransaction.block_height.is_(None))


async def test_restart_misses_nothing_and_credits_once(api, context):
    invoices = [await invoice_of(api, order_id=f"o{i}") for i in range(3)]
    first = watcher_for(context, owner="first", batch_blocks=2)
    await mine(context)
    for invoice in invoices:
        await send(context, invoice["address"], "100")
        await mine(context, 2)
    await first.step()  # reads two blocks, then "dies" holding the lease
    second = watcher_for(context, owner="second", batch_blocks=2)
    assert not (await second.step()).leased  # the lease is still the first's
    async with context.db.transaction() as session:
        await session.execute(
            update(ChainCursor).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    await follow(second)
    for invoice in invoices:
        assert (await status(api, invoice))["payment_status"] == "paid"
    async with context.db.reader() as session:
        assert len((await session.scalars(select(Deposit))).all()) == 3
    # The first comes back: it lost the lease and writes nothing.
    assert not (await first.step()).leased
    assert (await run_check(context)).ok


async def test_devnet_refuses_what_it_cannot_carry(context):
    async with context.db.transaction() as session:
        with pytest.raises(DevnetError, match="not a devnet address"):
            await context.devnet.send(session, "0xabc", Decimal(1), "USDT")
        with pytest.raises(DevnetError, match="carries no"):
            await context.devnet.send(session, FAUCET_ADDRESS, Decimal(1), "DOGE")
        with pytest.raises(DevnetError, match="6 decimals"):
            await context.devnet.send(session, FAUCET_ADDRESS, Decimal("0.0000001"), "USDT")
