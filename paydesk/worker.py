"""`paydesk worker`: every background loop, each in the package whose logic it drives."""

from __future__ import annotations

import asyncio

import structlog

from paydesk.accounts.worker import accounts_purge_loop
from paydesk.chains.worker import address_pool_loop, watchers_loop
from paydesk.checkout.worker import abandonment_loop
from paydesk.context import Context
from paydesk.idempotency.worker import purge_loop
from paydesk.invoices.worker import expiry_loop
from paydesk.notifications.worker import emails_loop
from paydesk.payouts.processor_worker import processor_payouts_loop
from paydesk.payouts.worker import payouts_loop
from paydesk.rates.worker import rates_loop
from paydesk.sweeps.worker import sweeps_loop
from paydesk.webhooks.worker import delivery_loop

log = structlog.get_logger(__name__)

LOOPS = (
    expiry_loop,
    abandonment_loop,
    purge_loop,
    accounts_purge_loop,
    address_pool_loop,
    watchers_loop,
    payouts_loop,
    sweeps_loop,
    processor_payouts_loop,
    rates_loop,
    delivery_loop,
    emails_loop,
)


async def run_workers(context: Context, stop: asyncio.Event) -> None:
    log.info("worker.started", loops=[loop.__name__ for loop in LOOPS])
    await asyncio.gather(*(loop(context, stop) for loop in LOOPS))
    log.info("worker.stopped")
