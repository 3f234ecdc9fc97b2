from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Base, BigId, UTCDateTime, new_uuid, utcnow


class PaymentLink(Base):
    """An invoice made from the dashboard's form. The link is the invoice's payment page;
    the description is what the payer reads there."""

    __tablename__ = "payment_links"
    __table_args__ = (Index("ix_payment_links_merchant_id_id", "merchant_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=new_uuid)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
