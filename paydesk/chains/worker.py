"""Keeps every enabled network's address pool stocked, so invoice creation claims and
never derives."""

from __future__ import annotations

import asyncio

import structlog

from paydesk.background import sleep_or_stop
from paydesk.chains.service import PoolLevel
from paydesk.context import Context

log = structlog.get_logger(__name__)

#: Free addresses kept per network: refilled to TARGET whenever fewer than LOW_WATER are
#: left. LOW_WATER covers the busiest second Paydesk serves (a few thousand invoices), so
#: requests never derive addresses themselves.
LOW_WATER = 2000
TARGET = 4000
#: How often the pool is checked: often while invoices take addresses, rarely when idle.
BUSY_INTERVAL_SECONDS = 0.2
IDLE_INTERVAL_SECONDS = 1.0


async def address_pool_loop(context: Context, stop: asyncio.Event) -> None:
    stocked: dict[str, int] = {}  # free addresses each network had after the last check
    while not stop.is_set():
        busy = False
        for network in context.addresses.networks:
            try:
                level = await _refill(context, network)
            except Exception:
                log.exception("addresses.pool_refill_failed", network=network)
                continue
            if level.added:
                log.info("addresses.pool_refilled", network=network, added=level.added)
            busy = busy or level.free < stocked.get(network, level.free)
            stocked[network] = level.free + level.added
        await sleep_or_stop(stop, BUSY_INTERVAL_SECONDS if busy else IDLE_INTERVAL_SECONDS)


async def _refill(context: Context, network: str) -> PoolLevel:
    """Top the pool up one batch per transaction, so other writers get in between."""
    async with context.db.transaction() as session:
        first = await context.addresses.top_up(session, network, LOW_WATER, TARGET, max_batches=1)
    added = first.added
    while added and first.free + added < TARGET:
        async with context.db.transaction() as session:
            # Below TARGET by construction, so the low-water check must not stop it.
            more = await context.addresses.top_up(session, network, TARGET, TARGET, max_batches=1)
        if not more.added:
            break
        added += more.added
    return PoolLevel(free=first.free, added=added)
