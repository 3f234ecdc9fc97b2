"""The processor payout worker: hands queued processor-rail payouts to their connector and
follows the pending ones until the processor has finished.

Each transition is written with its event in one database transaction: queued → sent
(`pending`, no event) before the processor is asked, then paid or failed with the reserve
settled or released. A worker that dies after the first write finds the payout sent and
asks the processor about it (by the payout's id when the start's answer was lost) instead
of starting it again. Chain payouts are the payout worker's (`paydesk.payouts.worker`).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.background import sleep_or_stop
from paydesk.checkout.connectors import ConnectorUnavailable
from paydesk.context import Context
from paydesk.db import utcnow
from paydesk.payouts.connectors import PayoutConnector, PayoutOrder, PayoutResult
from paydesk.payouts.models import Payout
from paydesk.payouts.service import PROCESSOR, QUEUED, SENT

log = structlog.get_logger(__name__)

#: Wait before asking a processor again about a pending payout.
FOLLOW_INTERVAL = timedelta(seconds=30)
#: Payouts started, and pending ones asked about, per run.
BATCH = 20


async def run_once(context: Context, limit: int = BATCH) -> int:
    """Start up to `limit` queued payouts, then ask about due pending ones. Returns how
    many were started or finished (0: nothing to do now)."""
    moved = 0
    for _ in range(limit):
        if not await _start_next(context):
            break
        moved += 1
    return moved + await _follow_pending(context, limit)


async def _start_next(context: Context) -> bool:
    """Mark the oldest queued payout sent and hand it to its connector; False if none."""
    async with context.db.transaction() as session:
        payout = await session.scalar(
            select(Payout)
            .where(Payout.rail == PROCESSOR, Payout.stage == QUEUED)
            .order_by(Payout.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if payout is None:
            return False
        connector = context.payouts.connector_named(payout.network)
        if connector is None:
            # The gateway was configured when the payout was accepted and is not now.
            await context.payouts.mark_failed(session, payout, "no_connector")
            log.error("payouts.processor_missing", payout=payout.public_id, gateway=payout.network)
            return True
        await context.payouts.hand_to_processor(session, payout)
        order = _order(context, payout)
        payout_id = payout.id
    try:
        result = await connector.start(order)
    except ConnectorUnavailable as exc:
        await _postpone(context, payout_id, str(exc))
        log.warning("payouts.processor_unavailable", payout=order.payout_id, error=str(exc))
        return True
    await _apply(context, payout_id, result)
    return True


async def _follow_pending(context: Context, limit: int) -> int:
    """Ask the processor about pending payouts that are due; how many finished."""
    async with context.db.reader() as session:
        pending = list(
            await session.scalars(
                select(Payout)
                .where(
                    Payout.rail == PROCESSOR,
                    Payout.stage == SENT,
                    or_(Payout.next_attempt_at.is_(None), Payout.next_attempt_at <= utcnow()),
                )
                .order_by(Payout.id)
                .limit(limit)
            )
        )
    finished = 0
    for payout in pending:
        connector = context.payouts.connector_named(payout.network)
        if connector is None:
            continue  # an operator decides: it was sent, it may still be paid
        finished += await _ask(context, connector, payout)
    return finished


async def _ask(context: Context, connector: PayoutConnector, payout: Payout) -> int:
    try:
        result = await connector.refresh(_order(context, payout), payout.txid)
    except ConnectorUnavailable as exc:
        await _postpone(context, payout.id, str(exc))
        return 0
    if result is None:
        await _postpone(context, payout.id, None)
        return 0
    return int(await _apply(context, payout.id, result))


async def _apply(context: Context, payout_id: int, result: PayoutResult) -> bool:
    """Write what the processor said; True if the payout is now final."""
    async with context.db.transaction() as session:
        payout = await _sent(session, payout_id)
        if payout is None:
            return False  # finished meanwhile by another worker
        await context.payouts.apply_processor_result(session, payout, result)
        if payout.stage == SENT:
            payout.next_attempt_at = utcnow() + FOLLOW_INTERVAL
            return False
        log.info("payouts.processor_finished", payout=payout.public_id, status=payout.status)
        return True


async def _postpone(context: Context, payout_id: int, error: str | None) -> None:
    async with context.db.transaction() as session:
        payout = await _sent(session, payout_id)
        if payout is not None:
            payout.next_attempt_at = utcnow() + FOLLOW_INTERVAL
            if error is not None:
                payout.last_error = error[:500]


async def _sent(session: AsyncSession, payout_id: int) -> Payout | None:
    """The payout, row-locked, if it is still with the processor."""
    payout = await session.scalar(select(Payout).where(Payout.id == payout_id).with_for_update())
    return payout if payout is not None and payout.stage == SENT else None


def _order(context: Context, payout: Payout) -> PayoutOrder:
    method = context.checkout.methods.payout_method(payout.method or "")
    assert method is not None and payout.public_id is not None and payout.environment
    return PayoutOrder(
        payout_id=payout.public_id,
        environment=payout.environment,
        method=method,
        amount=payout.amount,
        currency=payout.currency,
        description=payout.description or "",
        recipient=dict(payout.recipient or {}),
    )


async def processor_payouts_loop(context: Context, stop: asyncio.Event) -> None:
    """Run until stopped: at once while there is work, every poll interval otherwise."""
    while not stop.is_set():
        try:
            if await run_once(context):
                continue
        except Exception:
            log.exception("payouts.processor_step_failed")
        await sleep_or_stop(stop, context.settings.payout_poll_seconds)
