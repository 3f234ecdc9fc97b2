from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Base, BigId, UTCDateTime, new_uuid, utcnow

ACTIVE = "active"
BLOCKED = "blocked"


class StaticWallet(Base):
    """A deposit address bound for good to one merchant reference, coin and network.
    Every transfer to it is credited; blocked, it only holds what arrives."""

    __tablename__ = "static_wallets"
    __table_args__ = (
        UniqueConstraint("merchant_id", "order_id"),
        UniqueConstraint("network", "address"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: The static wallet's id (`uuid` of the API, `wallet_address_uuid` of webhooks).
    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=new_uuid)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"), index=True)
    order_id: Mapped[str] = mapped_column(String(128))
    currency: Mapped[str] = mapped_column(String(16))
    network: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(128))
    url_callback: Mapped[str | None] = mapped_column(String(255))
    from_referral_code: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    #: Blocked with `is_force_refund`: each new deposit goes back to its sender.
    force_refund: Mapped[bool] = mapped_column(Boolean, default=False)
    blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the held funds were sent back (spec: "You can withdraw only once").
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
