"""The abandonment loop: a checkout nobody started paying is cancelled after a while (and
announced), so merchants waiting on it hear that it is over."""

from __future__ import annotations

import asyncio

import structlog

from paydesk.background import sleep_or_stop
from paydesk.context import Context
from paydesk.db import utcnow

log = structlog.get_logger(__name__)


async def abandonment_loop(context: Context, stop: asyncio.Event) -> None:
    interval = context.settings.expiry_interval_seconds
    while not stop.is_set():
        try:
            async with context.db.transaction() as session:
                cancelled = await context.checkout.cancel_abandoned(session, utcnow())
            if cancelled:
                log.info("checkout.abandoned", count=cancelled)
                continue  # there may be more
        except Exception:
            log.exception("checkout.abandonment_failed")
        await sleep_or_stop(stop, interval)
