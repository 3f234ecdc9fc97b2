"""The expiry loop: invoices whose lifetime ended leave their waiting status."""

from __future__ import annotations

import asyncio

import structlog

from paydesk.background import sleep_or_stop
from paydesk.context import Context
from paydesk.db import utcnow

log = structlog.get_logger(__name__)


async def expire_once(context: Context, batch: int = 500) -> int:
    async with context.db.transaction() as session:
        return await context.invoices.expire_due(session, utcnow(), limit=batch)


async def expiry_loop(context: Context, stop: asyncio.Event) -> None:
    interval = context.settings.expiry_interval_seconds
    while not stop.is_set():
        try:
            expired = await expire_once(context)
            if expired:
                log.info("invoices.expired", count=expired)
                continue  # there may be more due
        except Exception:
            log.exception("invoices.expiry_failed")
        await sleep_or_stop(stop, interval)
