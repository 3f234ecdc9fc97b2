from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Base, UTCDateTime, new_uuid, utcnow


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    #: argon2id; None for a user made by the operator's CLI, who has not signed up.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    email_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The TOTP secret (encrypted), set once two-factor sign-in is switched on.
    totp_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    #: The last TOTP time step accepted: a code is good once.
    totp_last_step: Mapped[int | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Merchant(Base):
    """A project of a user. Its id is the `merchant` header of the Cryptomus dialect."""

    __tablename__ = "merchants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # API keys, encrypted with the operator's master key (paydesk.vault).
    payment_key_encrypted: Mapped[str] = mapped_column(Text)
    payout_key_encrypted: Mapped[str] = mapped_column(Text)
    #: Standard Webhooks signing secrets, newest first (several during a rotation),
    #: encrypted as one JSON list.
    webhook_secrets_encrypted: Mapped[str | None] = mapped_column(Text)
    payments_blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    payouts_blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Payouts only to the addresses the merchant listed (paydesk.payouts.models).
    payout_allowlist: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    #: No payouts before this time (set when the payout key is replaced).
    payouts_held_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Moneroo-dialect secret keys (paydesk.merchants.moneroo_keys): encrypted, and found by
    # their SHA-256 digest.
    moneroo_sandbox_key_encrypted: Mapped[str | None] = mapped_column(Text)
    moneroo_sandbox_key_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    moneroo_live_key_encrypted: Mapped[str | None] = mapped_column(Text)
    moneroo_live_key_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    moneroo_webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    # The hosted checkout's emails on a successful payment (paydesk.notifications).
    checkout_customer_receipts: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default="1"
    )
    checkout_merchant_notices: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default="1"
    )
    # The project as the dashboard shows it: how it integrates, and the API access request.
    integration: Mapped[str | None] = mapped_column(String(16))
    website: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(500))
    #: none, requested, approved (paydesk.merchants.service.ApiAccess). Merchants made by
    #: the operator's CLI are approved.
    api_access: Mapped[str] = mapped_column(String(16), default="approved",
                                            server_default="approved")  # fmt: skip
    api_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Defaults for new invoices (paydesk.merchants.service.MerchantPreferences).
    default_callback_url: Mapped[str | None] = mapped_column(String(255))
    #: [{"currency": ..., "network": ...}] the payer may use; None: every open service.
    enabled_services: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    #: Who pays the commission when an invoice does not say: "merchant" or "payer".
    commission_payer: Mapped[str] = mapped_column(String(8), default="merchant",
                                                  server_default="merchant")  # fmt: skip
    #: Comma-separated addresses told of each paid invoice; None: nobody.
    notification_emails: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
