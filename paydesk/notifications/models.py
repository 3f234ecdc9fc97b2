from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Base, BigId, UTCDateTime, utcnow


class EmailMessage(Base):
    """One email, rendered when it was recorded, waiting to be sent.

    It is added in the transaction of the change it tells about, so it exists exactly when
    the change does (a rolled-back payment sends nothing). A worker holds it by its lease
    while it sends; one that dies mid-send loses the lease and the email is attempted
    again (at least once).
    """

    __tablename__ = "email_messages"
    __table_args__ = (
        Index("ix_email_messages_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: What it is, e.g. "checkout.receipt", "checkout.notice".
    kind: Mapped[str] = mapped_column(String(32))
    #: What it is about (a payment's public id), for the operator.
    reference: Mapped[str | None] = mapped_column(String(64), index=True)
    to_address: Mapped[str] = mapped_column(String(254))
    #: The catalogue it was written in ("en", "fr", …).
    language: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(255))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    #: The bodies are encrypted with the master key: they carry a secret (a sign-in link).
    sealed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    #: pending, sent, dead
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Which claim holds the lease: only its holder may record the outcome.
    lease_token: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
