"""Driving the built-in devnet from tests: mining, and the watcher and payout worker that
read it, stepped until they have nothing left to do."""

from __future__ import annotations

from paydesk.chains.devnet import DevnetAdapter, DevnetPayoutSender
from paydesk.chains.watcher import Watcher
from paydesk.context import Context
from paydesk.payouts.worker import PayoutWorker
from paydesk.webhooks.sender import build_sender
from paydesk.webhooks.worker import deliver_due


async def follow_devnet(context: Context) -> None:
    """Let the devnet watcher read everything there is."""
    network = context.catalogue.network("devnet")
    watcher = Watcher(context, network, DevnetAdapter(context.db), owner="tests")
    try:
        for _ in range(50):
            result = await watcher.step()
            if not (result.blocks or result.rolled_back):
                return
        raise AssertionError("the devnet watcher never caught up")
    finally:
        await watcher.release()


async def mine(context: Context, blocks: int = 1) -> None:
    async with context.db.transaction() as session:
        await context.devnet.mine(session, blocks)
    await follow_devnet(context)


def devnet_payout_worker(context: Context) -> PayoutWorker:
    network = context.catalogue.network("devnet")
    return PayoutWorker(context, network, DevnetPayoutSender(context.db, context.catalogue),
                        owner="tests")  # fmt: skip


async def run_payouts(context: Context, worker: PayoutWorker | None = None) -> None:
    """Step the payout worker until it has nothing left to do now."""
    worker = worker or devnet_payout_worker(context)
    for _ in range(50):
        if not (await worker.step()).busy:
            return
    raise AssertionError("the payout worker never settled")


async def deliver_webhooks(context: Context) -> int:
    sender = build_sender(context.settings)
    try:
        total = 0
        while sent := await deliver_due(context, sender):
            total += sent
        return total
    finally:
        await sender.close()
