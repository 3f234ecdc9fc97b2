"""The email worker: claim due emails, send them a few at a time, record the outcomes."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from paydesk.background import sleep_or_stop
from paydesk.config import Settings
from paydesk.context import Context
from paydesk.db import utcnow
from paydesk.notifications.mailer import SEND_TIMEOUTS, Mailer, build_mailer
from paydesk.notifications.service import DEAD, Claimed, Failure, claim_due, finish

log = structlog.get_logger(__name__)

#: Pause when nothing was due.
IDLE_SECONDS = 1.0
#: Emails claimed per round, and sent at once (SMTP servers limit connections per client).
BATCH = 20
CONCURRENCY = 4


def lease_of(settings: Settings) -> timedelta:
    """Long enough for a whole round of slow sends: a lease that ran out would let another
    worker send the same email again."""
    rounds = math.ceil(BATCH / CONCURRENCY)
    return timedelta(seconds=rounds * settings.smtp_timeout_seconds * SEND_TIMEOUTS + 60)


async def send_due(
    context: Context, mailer: Mailer, *, clock: Callable[[], datetime] = utcnow
) -> int:
    """One round: the number of emails attempted. `clock` lets tests move time."""
    async with context.db.transaction() as session:
        claimed = await claim_due(session, clock(), BATCH, lease_of(context.settings))
    if not claimed:
        return 0
    gate = asyncio.Semaphore(CONCURRENCY)

    async def attempt(item: Claimed) -> Failure | None:
        async with gate:
            return await mailer.send(item.opened(context.vault))

    failures = await asyncio.gather(*(attempt(item) for item in claimed))
    results = list(zip(claimed, failures, strict=True))
    async with context.db.transaction() as session:
        statuses = await finish(session, results, clock())
    for item, failure in results:
        if failure is None:
            continue
        if statuses.get(item.id) == DEAD:
            log.warning("email.dead", email=item.id, kind=item.kind, error=failure.error)
        else:
            log.info("email.retry", email=item.id, kind=item.kind, error=failure.error)
    return len(claimed)


async def emails_loop(context: Context, stop: asyncio.Event) -> None:
    mailer = build_mailer(context.settings)
    while not stop.is_set():
        try:
            sent = await send_due(context, mailer)
        except Exception:
            log.exception("email.round_failed")
            sent = 0
        if not sent:
            await sleep_or_stop(stop, IDLE_SECONDS)
