from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Amount, Base, BigId, UTCDateTime, new_uuid, utcnow

#: Stages of a sweep still at work. At most one per (network, address, currency): a
#: second one would race the first for the same tokens.
OPEN_STAGES = ("queued", "funding", "signed", "sent")
_OPEN = text("stage IN ('queued', 'funding', 'signed', 'sent')")


class Sweep(Base):
    """Moving one coin's balance from a custodial deposit address to the network's hot
    wallet, step by step, so a worker that dies anywhere knows on restart what was done
    and never sends twice. The hot wallet first tops the address up with the native coin
    its transfer burns (`funding_*`), then the address sends the tokens (`txid`).

    Stages: queued → funding → queued (topped up) → signed → sent → done | failed, or
    skipped when there was nothing worth sweeping. Every transaction is stored before it
    is broadcast."""

    __tablename__ = "sweeps"
    __table_args__ = (
        Index("ix_sweeps_network_stage", "network", "stage"),
        Index("ix_sweeps_network_address_currency", "network", "address", "currency"),
        Index(
            "uq_sweeps_open",
            "network",
            "address",
            "currency",
            unique=True,
            postgresql_where=_OPEN,
            sqlite_where=_OPEN,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=new_uuid)
    network: Mapped[str] = mapped_column(String(32))
    #: The deposit address (a master-seed one: Paydesk holds its key) and its index.
    address: Mapped[str] = mapped_column(String(128))
    derivation_index: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(16))
    #: The newest credited deposit to the address in the currency when the job was made:
    #: a deposit credited later makes a new job once this one is over.
    last_deposit_id: Mapped[int] = mapped_column(BigInteger)
    stage: Mapped[str] = mapped_column(String(16))
    #: The coin network fees are paid in.
    native: Mapped[str] = mapped_column(String(16))
    #: Where the tokens go (the hot wallet) and how many were sent.
    to_address: Mapped[str | None] = mapped_column(String(128))
    amount: Mapped[Decimal | None] = mapped_column(Amount)

    # The hot wallet's top-up in flight (stage `funding`), stored before it is broadcast.
    funding_txid: Mapped[str | None] = mapped_column(String(128))
    funding_tx: Mapped[str | None] = mapped_column(Text)
    funding_nonce: Mapped[int | None] = mapped_column(BigInteger)
    funding_amount: Mapped[Decimal | None] = mapped_column(Amount)
    #: What confirmed top-ups sent to the address, and the network fees they cost.
    funded: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    funding_fee: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))

    # The token transfer from the deposit address, stored before it is broadcast.
    txid: Mapped[str | None] = mapped_column(String(128), index=True)
    signed_tx: Mapped[str | None] = mapped_column(Text)
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    block_height: Mapped[int | None] = mapped_column(BigInteger)
    #: Network fees the transfers from the deposit address cost (a reverted one too).
    transfer_fee: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    #: The stored transfer's fee where signing fixes it (the Bitcoin family: its inputs
    #: minus its outputs, which the node reports only for its wallet's own spends);
    #: None where the chain tells it once mined (gas, energy).
    signed_fee: Mapped[Decimal | None] = mapped_column(Amount)

    #: Transactions signed for this job (top-ups and transfers).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SweepTopUp(Base):
    """Every top-up the hot wallet ever signed for a sweep, by txid. The watcher sees a
    top-up as coins arriving at a deposit address; this is how it knows they are the
    platform's own gas, not a payment to credit. Written with the signed top-up, before
    it is broadcast, and kept (a reorganisation may show an old one again)."""

    __tablename__ = "sweep_top_ups"

    network: Mapped[str] = mapped_column(String(32), primary_key=True)
    txid: Mapped[str] = mapped_column(String(128), primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
