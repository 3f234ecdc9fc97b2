"""`paydesk worker`'s loops run together and stop when asked."""

from __future__ import annotations

import asyncio

from paydesk.chains.worker import LOW_WATER
from paydesk.worker import run_workers


async def test_worker_stocks_the_address_pool_and_stops(context):
    stop = asyncio.Event()
    task = asyncio.create_task(run_workers(context, stop))
    for _ in range(100):
        async with context.db.sessionmaker() as session:
            if await context.addresses.free_count(session, "devnet") >= LOW_WATER:
                break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    async with context.db.sessionmaker() as session:
        assert await context.addresses.free_count(session, "devnet") >= LOW_WATER
