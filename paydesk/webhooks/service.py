"""Recording events and moving their deliveries through their lives.

Recording never talks to the network: it adds the event and its deliveries to the caller's
transaction: one to the event's URL when it has one (Cryptomus), else one to each enabled
endpoint the merchant registered for the event's environment (Moneroo). Workers claim due
deliveries under a lease, send outside any transaction, and record the outcome only if they
still hold the lease. What counts as delivered and when to retry is each dialect's policy
(paydesk.webhooks.policy).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from paydesk.db import utcnow
from paydesk.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEvent
from paydesk.webhooks.policy import CHECKOUT_PREFIX, CRYPTOMUS, policy_for
from paydesk.webhooks.sender import Outcome

INVOICE_STATUS = "invoice.status"
#: A static wallet received a deposit (seen, credited or taken back).
WALLET_PAYMENT = "wallet.payment"
PAYOUT_STATUS = "payout.status"

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"

#: The Cryptomus dialect's retry schedule (kept here for callers that read it).
SCHEDULE = CRYPTOMUS.schedule
MAX_ATTEMPTS = CRYPTOMUS.max_attempts
JITTER = CRYPTOMUS.jitter


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
    elif topic.startswith(CHECKOUT_PREFIX):
        await _fan_out(session, event, now)
    return event


async def _fan_out(session: AsyncSession, event: WebhookEvent, now: datetime) -> None:
    """One delivery per enabled endpoint of the merchant in the event's environment
    (Moneroo events carry no URL: the merchant's registered webhooks receive them)."""
    from paydesk.checkout.webhook_endpoints import receiving

    targets = await receiving(session, event.merchant_id, event.payload["environment"])
    session.add_all(
        _delivery(event, url, now, "event", endpoint_id) for endpoint_id, url in targets
    )
    await session.flush()


async def schedule(
    session: AsyncSession,
    event: WebhookEvent,
    url: str,
    now: datetime,
    reason: str = "event",
    endpoint_id: uuid.UUID | None = None,
) -> WebhookDelivery:
    """A new delivery of `event` (also used by resend and by the operator's retry)."""
    delivery = _delivery(event, url, now, reason, endpoint_id)
    session.add(delivery)
    await session.flush()
    return delivery


def _delivery(
    event: WebhookEvent, url: str, now: datetime, reason: str, endpoint_id: uuid.UUID | None
) -> WebhookDelivery:
    return WebhookDelivery(
        reason=reason,
        event_id=event.id,
        merchant_id=event.merchant_id,
        subject_uuid=event.subject_uuid,
        url=url,
        endpoint_id=endpoint_id,
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )


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
    #: The registered endpoint it goes to (Moneroo), whose secret signs it.
    endpoint_id: uuid.UUID | None = None


async def claim_due(
    session: AsyncSession, now: datetime, limit: int, lease: timedelta
) -> list[Claimed]:
    """Lease up to `limit` due deliveries for `lease` (well above the HTTP timeout).

    A delivery waits while an earlier one of the same subject to the same URL is pending,
    so a receiver sees an invoice's statuses in order (and one failing receiver of a
    Moneroo event does not hold back the merchant's other endpoints).
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
                    earlier.url == WebhookDelivery.url,
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
    delivery_columns = (
        WebhookDelivery.id,
        WebhookDelivery.url,
        WebhookDelivery.attempts,
        WebhookDelivery.endpoint_id,
    )
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
                    WebhookEvent.id.in_([row[4] for row in picked])
                )
            )
        }
        rows = [(*row[:4], *events[row[4]]) for row in picked]
    rows.sort(key=lambda row: row[0])
    return [
        Claimed(
            delivery_id=delivery_id,
            token=token,
            url=url,
            attempts=attempts,
            event_uuid=event_uuid,
            merchant_id=merchant_id,
            topic=topic,
            payload=payload,
            endpoint_id=endpoint_id,
        )
        for delivery_id, url, attempts, endpoint_id, event_uuid, merchant_id, topic, payload in rows
    ]


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
        policy = policy_for(claimed.topic)
        change: dict[str, Any] = {
            "row": claimed.delivery_id,
            "attempts": tries,
            "status": PENDING,
            "delivered_at": None,
            "next_attempt_at": now,
            "last_error": None,
        }
        if policy.delivered(outcome):
            change.update(status=DELIVERED, delivered_at=now)
        elif (wait := policy.retry_wait(tries)) is None:
            change.update(status=DEAD, last_error=_error_text(outcome))
        else:
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
    return await schedule(
        session, event, delivery.url, now, reason="retry", endpoint_id=delivery.endpoint_id
    )


async def abandon_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> int:
    """Settle the pending deliveries to an endpoint being deleted as dead, and take their
    leases back so a worker sending one right now cannot record it. Returns how many."""
    abandoned = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == PENDING)
        .values(
            status=DEAD,
            last_error="webhook endpoint deleted",
            leased_until=None,
            lease_token=None,
        )
        .execution_options(synchronize_session=False)
    )
    return int(abandoned.rowcount or 0)  # type: ignore[attr-defined]


def _error_text(outcome: Outcome) -> str:
    if outcome.error:
        return outcome.error[:500]
    return f"HTTP {outcome.status_code}"
