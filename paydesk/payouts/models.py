from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Amount, Base, BigId, UTCDateTime, new_uuid, utcnow


class Payout(Base):
    """Money leaving a balance: coins sent to an address on a chain (rail `chain`), or a
    payment processor paying a recipient (rail `processor`: mobile money, the sandbox's
    test payout gateway). The API's `status` says where it stands for the merchant; `stage`
    says where the sending stands, step by step, so a worker that dies at any point knows
    on restart exactly what was done and never sends twice."""

    __tablename__ = "payouts"
    __table_args__ = (
        UniqueConstraint("merchant_id", "order_id"),
        Index("ix_payouts_merchant_id_id", "merchant_id", "id"),
        Index("ix_payouts_network_stage", "network", "stage"),
        Index("ix_payouts_rail_stage", "rail", "stage"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=new_uuid)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    #: The merchant's reference; none for refunds of a blocked static wallet.
    order_id: Mapped[str | None] = mapped_column(String(128))
    #: payout (asked through the API) or wallet_refund (held deposits sent back).
    purpose: Mapped[str] = mapped_column(String(16), default="payout")
    wallet_id: Mapped[int | None] = mapped_column(ForeignKey("static_wallets.id"))
    #: chain (the hot wallet sends coins) or processor (a payout connector pays).
    rail: Mapped[str] = mapped_column(String(16), default="chain", server_default="chain")

    # What was asked.
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(16))
    network: Mapped[str] = mapped_column(String(32))
    #: The network as the request spelled it (echoed back as sent).
    network_shown: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(128))
    is_subtract: Mapped[bool] = mapped_column(Boolean)
    url_callback: Mapped[str | None] = mapped_column(String(255))
    to_currency: Mapped[str | None] = mapped_column(String(16))
    from_currency: Mapped[str | None] = mapped_column(String(16))
    course_source: Mapped[str | None] = mapped_column(String(20))
    priority: Mapped[str] = mapped_column(String(16), default="recommended")
    memo: Mapped[str | None] = mapped_column(String(30))

    # What it costs and sends, fixed when accepted.
    #: The coin sent on chain, and how much of it arrives.
    payer_currency: Mapped[str] = mapped_column(String(16))
    payer_amount: Mapped[Decimal] = mapped_column(Amount)
    #: The balance it is paid from (the payer currency, or USDT with `from_currency`):
    #: the merchant's business wallet, or a blocked static wallet's held deposits.
    source_currency: Mapped[str] = mapped_column(String(16))
    source_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    #: Taken from that balance, fees included, and the part of it that is fees.
    merchant_amount: Mapped[Decimal] = mapped_column(Amount)
    commission: Mapped[Decimal] = mapped_column(Amount)
    #: The fee in the payer currency (booked as commission income when paid).
    fee: Mapped[Decimal] = mapped_column(Amount)
    #: Source units per payer unit, when the balance is another coin.
    rate: Mapped[Decimal | None] = mapped_column(Amount)
    #: The balance left after the reservation (the response's `balance`).
    balance_after: Mapped[Decimal] = mapped_column(Amount)
    #: Ledger book: "" for live money, "devnet" for test money.
    book: Mapped[str] = mapped_column(String(32), default="")

    status: Mapped[str] = mapped_column(String(16))
    #: approval → queued → signed → sent → done | failed
    stage: Mapped[str] = mapped_column(String(16))
    fail_reason: Mapped[str | None] = mapped_column(String(32))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(64))

    # The transaction, stored before it is broadcast.
    txid: Mapped[str | None] = mapped_column(String(128), index=True)
    signed_tx: Mapped[str | None] = mapped_column(Text)
    from_address: Mapped[str | None] = mapped_column(String(128))
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    block_height: Mapped[int | None] = mapped_column(BigInteger)
    #: Network fee the transaction cost, in the native coin.
    network_fee: Mapped[Decimal | None] = mapped_column(Amount)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # A processor payout (the Moneroo dialect): `network` is the gateway's code, `address`
    # the recipient's number and `txid` the gateway's transaction id.
    #: The public id, `po_` and 12 lowercase letters and digits.
    public_id: Mapped[str | None] = mapped_column(String(20), unique=True)
    #: sandbox or live: the key that made it decides, and only that key's mode sees it.
    environment: Mapped[str | None] = mapped_column(String(8))
    #: The payout method's code.
    method: Mapped[str | None] = mapped_column(String(32))
    #: The method's recipient fields as digits (`{"msisdn": "22951345020"}`).
    recipient: Mapped[dict[str, str] | None] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(String(255))
    #: The merchant's key → string pairs (`metadata` is taken by SQLAlchemy).
    extra: Mapped[dict[str, str] | None] = mapped_column("metadata", JSON)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("checkout_customers.id"))
    #: The gateway's own word for the transaction's state, and why it failed.
    gateway_status: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(255))
    failure_error_code: Mapped[str | None] = mapped_column(String(64))
    failure_error_type: Mapped[str | None] = mapped_column(String(64))

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    #: Handed to the chain's node, or to the processor (a processor payout's `pending_at`).
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PayoutLane(Base):
    """One network's hot wallet as the payout worker drives it: which worker holds it (one
    signer per network, so nonces are handed out in order) and the next nonce."""

    __tablename__ = "payout_lanes"

    network: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_nonce: Mapped[int | None] = mapped_column(BigInteger)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PayoutAddress(Base):
    """An address a merchant allows payouts to, when it keeps an allowlist."""

    __tablename__ = "payout_allowlist"
    __table_args__ = (UniqueConstraint("merchant_id", "network", "address"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"), index=True)
    network: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(128))
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
