from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Base, BigId, UTCDateTime, utcnow


class AddressCounter(Base):
    """Next derivation index per network. Only pool refills advance it, under its row lock,
    so indices are handed out once and without gaps."""

    __tablename__ = "address_counters"

    network: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_index: Mapped[int] = mapped_column(BigInteger)


class DepositAddress(Base):
    """Every address ever derived. Unassigned ones (`assigned_at` null) form the pool that
    allocation claims from; once assigned, an address is never handed out again."""

    __tablename__ = "deposit_addresses"
    __table_args__ = (
        UniqueConstraint("network", "address"),
        UniqueConstraint("network", "derivation_index"),
        Index(
            "ix_deposit_addresses_free",
            "network",
            "derivation_index",
            postgresql_where=text("assigned_at IS NULL"),
            sqlite_where=text("assigned_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    network: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(128))
    derivation_index: Mapped[int] = mapped_column(BigInteger)
    purpose: Mapped[str | None] = mapped_column(String(16))
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
