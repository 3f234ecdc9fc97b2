"""Forgetting expired sessions, spent email links and old failed sign-ins."""

from __future__ import annotations

import asyncio

import structlog

from paydesk.accounts.service import purge
from paydesk.background import sleep_or_stop
from paydesk.context import Context
from paydesk.db import utcnow

log = structlog.get_logger(__name__)

PURGE_INTERVAL_SECONDS = 600.0


async def accounts_purge_loop(context: Context, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            async with context.db.transaction() as session:
                removed = await purge(session, utcnow())
            if removed:
                log.info("accounts.purged", count=removed)
        except Exception:
            log.exception("accounts.purge_failed")
        await sleep_or_stop(stop, PURGE_INTERVAL_SECONDS)
