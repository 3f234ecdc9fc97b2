from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Amount, Base, BigId, UTCDateTime, new_uuid, utcnow


class Deposit(Base):
    """One incoming transfer output. The unique key is what makes crediting it twice
    impossible, whoever calls and however often."""

    __tablename__ = "deposits"
    __table_args__ = (
        UniqueConstraint("network", "txid", "output_index"),
        # The watcher's confirmation pass: seen deposits of a network, oldest block first.
        Index("ix_deposits_network_status_height", "network", "status", "block_height"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=new_uuid)
    network: Mapped[str] = mapped_column(String(32))
    txid: Mapped[str] = mapped_column(String(128))
    #: Output (UTXO chains) or log index (EVM token transfers) within the transaction.
    output_index: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(128), index=True)
    currency: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Amount)
    from_address: Mapped[str | None] = mapped_column(String(128))
    block_height: Mapped[int | None] = mapped_column(BigInteger)
    block_hash: Mapped[str | None] = mapped_column(String(128))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"), index=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    #: The static wallet it was sent to (invoice_id is then null).
    wallet_id: Mapped[int | None] = mapped_column(ForeignKey("static_wallets.id"), index=True)
    #: Booked as held (the wallet was blocked) instead of credited to the merchant.
    held: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    #: seen (on chain or in the mempool, not yet confirmed: nothing booked) → credited
    #: (booked) → reversed (its block was orphaned); a seen one whose block or mempool
    #: entry vanished is orphaned. A reversed or orphaned transfer that comes back in a new
    #: block is seen again, in the same row.
    status: Mapped[str] = mapped_column(String(16))
    credit_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    reversal_transaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_transactions.id")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    credited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
