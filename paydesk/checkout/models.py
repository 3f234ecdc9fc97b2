from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Amount, Base, BigId, UTCDateTime, utcnow

# Payment statuses (the Moneroo dialect's closed set).
INITIATED, PENDING, SUCCESS, FAILED, CANCELLED = (
    "initiated", "pending", "success", "failed", "cancelled"
)  # fmt: skip
FINAL = frozenset({SUCCESS, FAILED, CANCELLED})


def timestamp(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with microseconds and Z, as checkout payments and payouts show
    their times (Moneroo's format)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class CheckoutCustomer(Base):
    """Who pays, per merchant and mode, matched by email: a later payment of the same
    customer updates what the merchant sent."""

    __tablename__ = "checkout_customers"
    __table_args__ = (UniqueConstraint("merchant_id", "environment", "email"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(16), unique=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    environment: Mapped[str] = mapped_column(String(8))
    email: Mapped[str] = mapped_column(String(254))
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(100))
    country_code: Mapped[str | None] = mapped_column(String(2))
    zip_code: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CheckoutPayment(Base):
    """A payment initialized by a merchant's server and paid on the hosted checkout."""

    __tablename__ = "checkout_payments"
    __table_args__ = (Index("ix_checkout_payments_merchant_id_id", "merchant_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: The public id, `py_` and 12 lowercase letters and digits.
    public_id: Mapped[str] = mapped_column(String(20), unique=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    #: sandbox or live: the key that made it decides, and only that key's mode sees it.
    environment: Mapped[str] = mapped_column(String(8))
    customer_id: Mapped[int] = mapped_column(ForeignKey("checkout_customers.id"))
    status: Mapped[str] = mapped_column(String(16), default=INITIATED)

    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(255))
    #: As sent; once the customer is sent back, with the outcome's parameters appended.
    return_url: Mapped[str] = mapped_column(Text)
    #: The merchant's key → string pairs (`metadata` is taken by SQLAlchemy).
    extra: Mapped[dict[str, str]] = mapped_column("metadata", JSON)
    #: Method codes the checkout may offer (resolved at initialize).
    methods: Mapped[list[str]] = mapped_column(JSON)
    restrict_country_code: Mapped[str | None] = mapped_column(String(2))
    restricted_phone: Mapped[str | None] = mapped_column(String(32))

    is_processed: Mapped[bool] = mapped_column(Boolean, default=False)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # The attempt (`capture`), once the customer chose a method.
    method: Mapped[str | None] = mapped_column(String(32))
    capture_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    phone_number: Mapped[str | None] = mapped_column(String(32))
    gateway_transaction_id: Mapped[str | None] = mapped_column(String(128))
    gateway_status: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(255))
    failure_error_code: Mapped[str | None] = mapped_column(String(64))
    failure_error_type: Mapped[str | None] = mapped_column(String(64))
    #: The customer's browser when it paid: ip, user agent, country, locale.
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The crypto invoice a `crypto_*` method opened.
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))

    initiated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
