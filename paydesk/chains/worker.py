"""Keeps every enabled network's address pool stocked, so invoice creation claims and
never derives."""

from __future__ import annotations

import asyncio

import structlog

from paydesk.background import sleep_or_stop
from paydesk.context import Context

log = structlog.get_logger(__name__)

#: Free addresses kept per network (several seconds of peak invoice creation): refilled
#: to TARGET whenever fewer than LOW_WATER are left.
LOW_WATER = 1000
TARGET = 2000
INTERVAL_SECONDS = 1.0


async def address_pool_loop(context: Context, stop: asyncio.Event) -> None:
    while not stop.is_set():
        for network in context.addresses.networks:
            try:
                async with context.db.transaction() as session:
                    added = await context.addresses.top_up(session, network, LOW_WATER, TARGET)
                if added:
                    log.info("addresses.pool_refilled", network=network, added=added)
            except Exception:
                log.exception("addresses.pool_refill_failed", network=network)
        await sleep_or_stop(stop, INTERVAL_SECONDS)
