"""Forgetting idempotency keys older than their time-to-live."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from paydesk.background import sleep_or_stop
from paydesk.context import Context
from paydesk.db import utcnow
from paydesk.idempotency.service import purge

log = structlog.get_logger(__name__)

PURGE_INTERVAL_SECONDS = 600.0


async def purge_loop(context: Context, stop: asyncio.Event) -> None:
    ttl = timedelta(hours=context.settings.idempotency_ttl_hours)
    while not stop.is_set():
        try:
            async with context.db.transaction() as session:
                removed = await purge(session, utcnow() - ttl)
            if removed:
                log.info("idempotency.purged", count=removed)
        except Exception:
            log.exception("idempotency.purge_failed")
        await sleep_or_stop(stop, PURGE_INTERVAL_SECONDS)
