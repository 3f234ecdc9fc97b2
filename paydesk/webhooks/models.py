from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Uuid
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
