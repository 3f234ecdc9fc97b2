from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Base, BigId, UTCDateTime, utcnow


class AddressCounter(Base):
    """Next derivation index per network; advanced inside the allocating transaction, so a
    rolled-back invoice gives its index back and indices stay gap-free."""

    __tablename__ = "address_counters"

    network: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_index: Mapped[int] = mapped_column(BigInteger)


class DepositAddress(Base):
    """Every address ever handed out. Unique per network: an address is never reused."""

    __tablename__ = "deposit_addresses"
    __table_args__ = (
        UniqueConstraint("network", "address"),
        UniqueConstraint("network", "derivation_index"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    network: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(128))
    derivation_index: Mapped[int] = mapped_column(BigInteger)
    purpose: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
