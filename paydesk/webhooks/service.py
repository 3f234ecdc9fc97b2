"""Recording events and moving their deliveries through their lives.

Recording never talks to the network: it adds the event (and, when there is a URL, its
delivery) to the caller's transaction. Workers claim due deliveries under a lease, send
outside any transaction, and record the outcome only if they still hold the lease.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from paydesk.db import utcnow
from paydesk.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEvent
from paydesk.webhooks.sender import Outcome

INVOICE_STATUS = "invoice.status"
#: A static wallet received a deposit (seen, credited or taken back).
WALLET_PAYMENT = "wallet.payment"
PAYOUT_STATUS = "payout.status"

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"

#: Wait before each retry (attempt n+1 waits SCHEDULE[n-1]), ±10 % jitter: 18 attempts
#: over about 3 days 16 hours (never less than 3 days 7 hours), then the delivery is dead
#: (kept, and retryable by hand).
SCHEDULE = [
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=2),
    timedelta(minutes=4),
    timedelta(minutes=8),
    timedelta(minutes=16),
    timedelta(minutes=32),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
    timedelta(hours=8),
    timedelta(hours=12),
    timedelta(hours=12),
    timedelta(hours=12),
    timedelta(hours=12),
    timedelta(hours=12),
    timedelta(hours=12),
]
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.1


async def record(
    session: AsyncSession,
    *,
    merchant_id: uuid.UUID,
    topic: str,
    subject_uuid: uuid.UUID,
    url: str | None,
    payload: dict[str, Any],
) -> WebhookEvent:
    """Add the event to the caller's transaction: it exists exactly when the change does."""
    now = utcnow()
    event = WebhookEvent(
        uuid=uuid.uuid4(),
        merchant_id=merchant_id,
        topic=topic,
        subject_uuid=subject_uuid,
        url=url,
        payload=payload,
        created_at=now,
    )
    session.add(event)
    await session.flush()
    if url:
        await schedule(session, event, url, now)
    return event


async def schedule(
    session: AsyncSession, event: WebhookEvent, url: str, now: datetime, reason: str = "event"
) -> WebhookDelivery:
    """A new delivery of `event` (also used by resend and by the operator's retry)."""
    delivery = WebhookDelivery(
        reason=reason,
        event_id=event.id,
        merchant_id=event.merchant_id,
        subject_uuid=event.subject_uuid,
        url=url,
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    await session.flush()
    return delivery


@dataclass(frozen=True, slots=True)
class Claimed:
    """A leased delivery and what rendering its event needs."""

    delivery_id: int
    token: uuid.UUID
    url: str
    attempts: int
    event_uuid: uuid.UUID
    merchant_id: uuid.UUID
    topic: str
    payload: dict[str, Any]


async def claim_due(
    session: AsyncSession, now: datetime, limit: int, lease: timedelta
) -> list[Claimed]:
    """Lease up to `limit` due deliveries for `lease` (well above the HTTP timeout).

    A delivery waits while an earlier one of the same subject is pending, so a receiver
    sees an invoice's statuses in order.
    `SKIP LOCKED` lets several workers claim at once on PostgreSQL without waiting for
    or taking each other's rows; SQLite's write lock serialises claims."""
    earlier = aliased(WebhookDelivery)
    due = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= now,
            (WebhookDelivery.leased_until.is_(None)) | (WebhookDelivery.leased_until < now),
            ~exists().where(
                and_(
                    earlier.subject_uuid == WebhookDelivery.subject_uuid,
                    earlier.status == PENDING,
                    earlier.id < WebhookDelivery.id,
                )
            ),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)
    )
    token = uuid.uuid4()
    lease_values = {"leased_until": now + lease, "lease_token": token}
    event_columns = (
        WebhookEvent.uuid,
        WebhookEvent.merchant_id,
        WebhookEvent.topic,
        WebhookEvent.payload,
    )
    delivery_columns = (WebhookDelivery.id, WebhookDelivery.url, WebhookDelivery.attempts)
    # Plain rows, not ORM objects: building a few hundred entities per round cost more
    # than the round's queries.
    if session.get_bind().dialect.name == "postgresql":
        # One statement picks, leases, and returns what rendering needs.
        leased = await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(due), WebhookEvent.id == WebhookDelivery.event_id)
            .values(**lease_values)
            .returning(*delivery_columns, *event_columns)
            .execution_options(synchronize_session=False)
        )
        rows = [tuple(row) for row in leased.all()]
    else:  # SQLite's RETURNING sees only the updated table
        leased = await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(due))
            .values(**lease_values)
            .returning(*delivery_columns, WebhookDelivery.event_id)
            .execution_options(synchronize_session=False)
        )
        picked = leased.all()
        events = {
            row[0]: tuple(row[1:])
            for row in await session.execute(
                select(WebhookEvent.id, *event_columns).where(
                    WebhookEvent.id.in_([row[3] for row in picked])
                )
            )
        }
        rows = [(*row[:3], *events[row[3]]) for row in picked]
    rows.sort(key=lambda row: row[0])
    return [Claimed(row[0], token, *row[1:]) for row in rows]


async def finish(
    session: AsyncSession, results: list[tuple[Claimed, Outcome]], now: datetime
) -> dict[int, str]:
    """Log the attempts and settle or reschedule their deliveries, in three statements
    for the whole batch. Returns each recorded delivery's new status; a delivery whose
    lease was lost (another worker holds it now) is left out and its outcome dropped."""
    if not results:
        return {}
    held = set(
        await session.scalars(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.id.in_([claimed.delivery_id for claimed, _ in results]),
                WebhookDelivery.lease_token.in_({claimed.token for claimed, _ in results}),
            )
            .with_for_update()
        )
    )
    changes, attempts, statuses = [], [], {}
    for claimed, outcome in results:
        if claimed.delivery_id not in held:
            continue
        tries = claimed.attempts + 1
        change: dict[str, Any] = {
            "row": claimed.delivery_id,
            "attempts": tries,
            "status": PENDING,
            "delivered_at": None,
            "next_attempt_at": now,
            "last_error": None,
        }
        if outcome.delivered:
            change.update(status=DELIVERED, delivered_at=now)
        elif tries >= MAX_ATTEMPTS:
            change.update(status=DEAD, last_error=_error_text(outcome))
        else:
            wait = SCHEDULE[tries - 1] * random.uniform(1 - JITTER, 1 + JITTER)
            change.update(next_attempt_at=now + wait, last_error=_error_text(outcome))
        changes.append(change)
        statuses[claimed.delivery_id] = change["status"]
        attempts.append(
            {
                "delivery_id": claimed.delivery_id,
                "attempted_at": now,
                "status_code": outcome.status_code,
                "latency_ms": outcome.latency_ms,
                "error": outcome.error,
                "response_head": outcome.response_head,
            }
        )
    if changes:
        connection = await session.connection()
        await connection.execute(_SETTLE, changes)
        await connection.execute(insert(WebhookAttempt), attempts)
    return statuses


_deliveries = WebhookDelivery.__table__
#: Built once; executed for a whole batch of outcomes at a time.
_SETTLE = (
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("row"))
    .values(
        attempts=bindparam("attempts"),
        status=bindparam("status"),
        delivered_at=bindparam("delivered_at"),
        next_attempt_at=bindparam("next_attempt_at"),
        last_error=bindparam("last_error"),
        leased_until=None,
        lease_token=None,
    )
)


#: Resends a merchant may ask for per invoice (spec 3.5).
MAX_RESENDS = 10


class NothingToResend(LookupError):
    """The subject never had a webhook address, or no event yet."""


class TooManyResends(Exception):
    pass


async def resend_latest(
    session: AsyncSession, subject_uuid: uuid.UUID, now: datetime
) -> WebhookDelivery:
    """Deliver the subject's latest event again, to the address it was meant for."""
    event = await session.scalar(
        select(WebhookEvent)
        .where(WebhookEvent.subject_uuid == subject_uuid, WebhookEvent.url.is_not(None))
        .order_by(WebhookEvent.id.desc())
        .limit(1)
    )
    if event is None or event.url is None:
        raise NothingToResend(str(subject_uuid))
    resent = await session.scalar(
        select(func.count())
        .select_from(WebhookDelivery)
        .where(WebhookDelivery.subject_uuid == subject_uuid, WebhookDelivery.reason == "resend")
    )
    if (resent or 0) >= MAX_RESENDS:
        raise TooManyResends(str(subject_uuid))
    return await schedule(session, event, event.url, now, reason="resend")


async def retry_dead(session: AsyncSession, delivery_id: int, now: datetime) -> WebhookDelivery:
    """The operator's retry: a fresh delivery of the same event to the same address."""
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise LookupError(f"no delivery {delivery_id}")
    event = await session.get_one(WebhookEvent, delivery.event_id)
    return await schedule(session, event, delivery.url, now, reason="retry")


def _error_text(outcome: Outcome) -> str:
    if outcome.error:
        return outcome.error[:500]
    return f"HTTP {outcome.status_code}"
