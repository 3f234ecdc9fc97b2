from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Base, BigId, UTCDateTime, new_uuid, utcnow


class WebhookEvent(Base):
    """Something a merchant is told about, with what was true when it happened.

    The payload is a dialect-neutral snapshot taken in the transaction that made the
    change; each dialect renders and signs its own body from it at delivery.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_merchant_id_id", "merchant_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: Stable across retries: receivers de-duplicate on it.
    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=new_uuid)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    #: e.g. "invoice.status"
    topic: Mapped[str] = mapped_column(String(64))
    #: The invoice, wallet payment or payout the event is about.
    subject_uuid: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    url: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event on its way to one URL: attempted until its dialect's policy calls an
    answer delivered or its last attempt failed (paydesk.webhooks.policy).

    A worker holds a delivery by its lease while it sends; a worker that dies mid-send
    loses the lease and the delivery is attempted again (at least once). Deliveries of one
    subject to one URL go out in event order: a later one waits while an earlier one is
    pending.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_subject_uuid_id", "subject_uuid", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id"), index=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    subject_uuid: Mapped[uuid.UUID] = mapped_column(Uuid)
    url: Mapped[str] = mapped_column(String(255))
    #: The merchant's registered endpoint (Moneroo) whose secret signs the body. No foreign
    #: key: the outbox knows no dialect's tables, and deliveries outlive a deleted endpoint.
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    #: Why it exists: "event" (the change itself), "resend" (the merchant asked), "retry"
    #: (the operator re-queued a dead one).
    reason: Mapped[str] = mapped_column(String(16), default="event")
    #: pending, delivered, dead
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Which claim holds the lease: only its holder may record the outcome.
    lease_token: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookAttempt(Base):
    """The log of every attempt, kept for the operator and the merchant."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    #: The first bytes of the receiver's answer.
    response_head: Mapped[str | None] = mapped_column(String(500))
