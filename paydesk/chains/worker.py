"""The chain loops of `paydesk worker`: one watcher per enabled network (the devnet's also
produces its blocks), and the address pools kept stocked so invoice creation claims and
never derives."""

from __future__ import annotations

import asyncio
import time

import structlog

from paydesk.background import sleep_or_stop
from paydesk.chains.registry import build_adapter
from paydesk.chains.service import PoolLevel
from paydesk.chains.watcher import Watcher, run_watcher
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


async def watchers_loop(context: Context, stop: asyncio.Event) -> None:
    """A watcher per enabled network, each in its own task (a slow node holds up only its
    own network)."""
    settings = context.settings
    runs = []
    adapters = []
    for code in context.addresses.networks:
        network = context.catalogue.network(code)
        if network is None:
            continue
        adapter = build_adapter(network, context.catalogue, settings, context.db)
        adapters.append(adapter)
        watcher = Watcher(context, network, adapter)
        if network.family == "devnet":
            miner = DevnetMiner(context, settings.devnet_block_seconds)
            poll = min(settings.watcher_poll_seconds, settings.devnet_block_seconds / 4)
            runs.append(run_watcher(watcher, stop, poll, before_step=miner))
        else:
            runs.append(run_watcher(watcher, stop, settings.watcher_poll_seconds))
    try:
        await asyncio.gather(*runs)
    finally:
        for adapter in adapters:
            await adapter.close()


class DevnetMiner:
    """Produces a devnet block every `interval` seconds. It runs before each step of the
    devnet's watcher, which only the lease holder runs: one producer per installation."""

    def __init__(self, context: Context, interval: float) -> None:
        self.context = context
        self.interval = interval
        self._last = 0.0

    async def __call__(self) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        async with self.context.db.transaction() as session:
            await self.context.devnet.mine(session)
