from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Amount, Base, BigId, UTCDateTime, new_uuid, utcnow


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("merchant_id", "order_id"),
        Index("ix_invoices_merchant_id_id", "merchant_id", "id"),
        Index("ix_invoices_merchant_id_created_at", "merchant_id", "created_at"),
        Index("ix_invoices_status_expired_at", "status", "expired_at"),
        Index("ix_invoices_network_address", "network", "address"),
    )

    # Sequential key for keyset pagination; `uuid` is the public id.
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=new_uuid)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    order_id: Mapped[str] = mapped_column(String(128))

    # What the merchant asked for.
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(16))
    to_currency: Mapped[str | None] = mapped_column(String(16))
    course_source: Mapped[str | None] = mapped_column(String(20))
    discount_percent: Mapped[int | None] = mapped_column(Integer)
    subtract: Mapped[int] = mapped_column(Integer, default=0)
    accuracy_payment_percent: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    is_payment_multiple: Mapped[bool] = mapped_column(Boolean, default=True)
    lifetime: Mapped[int] = mapped_column(Integer)
    url_return: Mapped[str | None] = mapped_column(String(255))
    url_success: Mapped[str | None] = mapped_column(String(255))
    url_callback: Mapped[str | None] = mapped_column(String(255))
    additional_data: Mapped[str | None] = mapped_column(String(255))
    from_referral_code: Mapped[str | None] = mapped_column(String(255))
    # Allowed / excluded coins for the payer: [{"currency": "USDT", "network": "tron"}, ...]
    currencies: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    except_currencies: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)

    # What the payer pays, locked when the payer's coin is known.
    payer_currency: Mapped[str | None] = mapped_column(String(16))
    network: Mapped[str | None] = mapped_column(String(32))
    payer_amount: Mapped[Decimal | None] = mapped_column(Amount)
    payer_amount_exchange_rate: Mapped[Decimal | None] = mapped_column(Amount)
    rate_source: Mapped[str | None] = mapped_column(String(32))
    discount: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    commission: Mapped[Decimal | None] = mapped_column(Amount)
    merchant_amount: Mapped[Decimal | None] = mapped_column(Amount)
    address: Mapped[str | None] = mapped_column(String(128))

    # What happened on chain.
    payment_amount: Mapped[Decimal | None] = mapped_column(Amount)
    #: What the credited deposits actually gave the merchant and the platform, read from
    #: the ledger (null until something is credited): an over- or underpayment moves them
    #: away from the quoted `merchant_amount` and `commission`.
    received_merchant_amount: Mapped[Decimal | None] = mapped_column(Amount)
    received_commission: Mapped[Decimal | None] = mapped_column(Amount)
    from_address: Mapped[str | None] = mapped_column(String(128))
    txid: Mapped[str | None] = mapped_column(String(128))

    status: Mapped[str] = mapped_column(String(32))
    expired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def merchant_amount_now(self) -> Decimal | None:
        """What the merchant got once money arrived, what it will get before."""
        if self.received_merchant_amount is not None:
            return self.received_merchant_amount
        return self.merchant_amount

    @property
    def amount_due(self) -> Decimal | None:
        """What the payer still has to send: all of it, the rest of a short payment, or
        nothing once enough arrived (None until the payer's coin is known)."""
        if self.payer_amount is None:
            return None
        return max(self.payer_amount - (self.payment_amount or Decimal(0)), Decimal(0))

    @property
    def commission_now(self) -> Decimal | None:
        if self.received_commission is not None:
            return self.received_commission
        return self.commission
