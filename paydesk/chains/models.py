from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Amount, Base, BigId, UTCDateTime, utcnow

#: `key_owner` of addresses derived from Paydesk's own master seed.
MASTER_KEY_OWNER = ""


class AddressCounter(Base):
    """Next derivation index per network and key (the master seed, or one merchant's
    xpub). Only refills advance it, under its row lock, so indices are handed out once
    and without gaps."""

    __tablename__ = "address_counters"

    network: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_owner: Mapped[str] = mapped_column(
        String(36), primary_key=True, default="", server_default=""
    )
    next_index: Mapped[int] = mapped_column(BigInteger)


class DepositAddress(Base):
    """Every address ever derived. Unassigned ones (`assigned_at` null) form the pool that
    allocation claims from; once assigned, an address is never handed out again, and the
    unique (network, address) makes reusing one impossible, not just unlikely."""

    __tablename__ = "deposit_addresses"
    __table_args__ = (
        UniqueConstraint("network", "address"),
        UniqueConstraint("network", "key_owner", "derivation_index"),
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
    #: Whose key derived it: "" for the master seed, a merchant id for its own xpub
    #: (watch-only: the funds go to the merchant's wallet, Paydesk never holds the key).
    key_owner: Mapped[str] = mapped_column(String(36), default="", server_default="")
    purpose: Mapped[str | None] = mapped_column(String(16))
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MasterSeed(Base):
    """The BIP39 mnemonic every custodial key derives from, encrypted with the master key.
    One row, made at first start; the primary key makes two first starts agree on one."""

    __tablename__ = "master_seeds"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    mnemonic_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MerchantXpub(Base):
    """A merchant's own account-level extended public key for a network: its invoices
    there get addresses of the merchant's wallet (watch-only, non-custodial)."""

    __tablename__ = "merchant_xpubs"

    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    network: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: Not a secret, but it reveals every address of the wallet: kept encrypted.
    xpub_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChainCursor(Base):
    """How far a network's watcher has read (the last block it processed), and which
    worker holds the network: one watcher per network, across processes."""

    __tablename__ = "chain_cursors"

    network: Mapped[str] = mapped_column(String(32), primary_key=True)
    height: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(80))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChainBlock(Base):
    """Recent blocks a watcher processed, kept to find where a reorganisation forked."""

    __tablename__ = "chain_blocks"

    network: Mapped[str] = mapped_column(String(32), primary_key=True)
    height: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[str] = mapped_column(String(80))
    parent_hash: Mapped[str] = mapped_column(String(80))


class DevnetBlock(Base):
    """A block of the built-in devnet, which Paydesk itself produces."""

    __tablename__ = "devnet_blocks"

    height: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(80), unique=True)
    parent_hash: Mapped[str] = mapped_column(String(80))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)


class DevnetTransaction(Base):
    """A devnet transfer: in the mempool while `block_height` is null, then mined."""

    __tablename__ = "devnet_transactions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    txid: Mapped[str] = mapped_column(String(80), unique=True)
    from_address: Mapped[str] = mapped_column(String(128))
    to_address: Mapped[str] = mapped_column(String(128))
    currency: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Amount)
    block_height: Mapped[int | None] = mapped_column(BigInteger, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
