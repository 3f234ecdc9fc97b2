"""chain watchers, devnet chain, master seed, watch-only xpubs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 05:25:45
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import paydesk.db

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chain_blocks",
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=80), nullable=False),
        sa.Column("parent_hash", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("network", "height", name=op.f("pk_chain_blocks")),
    )
    op.create_table(
        "chain_cursors",
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=80), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", paydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("network", name=op.f("pk_chain_cursors")),
    )
    op.create_table(
        "devnet_blocks",
        sa.Column("height", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=80), nullable=False),
        sa.Column("parent_hash", sa.String(length=80), nullable=False),
        sa.Column("timestamp", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("height", name=op.f("pk_devnet_blocks")),
        sa.UniqueConstraint("hash", name=op.f("uq_devnet_blocks_hash")),
    )
    op.create_table(
        "devnet_transactions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("txid", sa.String(length=80), nullable=False),
        sa.Column("from_address", sa.String(length=128), nullable=False),
        sa.Column("to_address", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("amount", paydesk.db.Amount(), nullable=False),
        sa.Column("block_height", sa.BigInteger(), nullable=True),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devnet_transactions")),
        sa.UniqueConstraint("txid", name=op.f("uq_devnet_transactions_txid")),
    )
    with op.batch_alter_table("devnet_transactions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_devnet_transactions_block_height"), ["block_height"], unique=False
        )

    op.create_table(
        "master_seeds",
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("mnemonic_encrypted", sa.Text(), nullable=False),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_master_seeds")),
    )
    op.create_table(
        "merchant_xpubs",
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("xpub_encrypted", sa.Text(), nullable=False),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_merchant_xpubs_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "network", name=op.f("pk_merchant_xpubs")),
    )
    # Counters are per key now (the master seed, or a merchant's xpub).
    with op.batch_alter_table("address_counters", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("key_owner", sa.String(length=36), server_default="", nullable=False)
        )
        batch_op.drop_constraint("pk_address_counters", type_="primary")
        batch_op.create_primary_key("pk_address_counters", ["network", "key_owner"])

    with op.batch_alter_table("deposit_addresses", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("key_owner", sa.String(length=36), server_default="", nullable=False)
        )
        batch_op.drop_constraint(
            batch_op.f("uq_deposit_addresses_network_derivation_index"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_deposit_addresses_network_key_owner_derivation_index"),
            ["network", "key_owner", "derivation_index"],
        )

    with op.batch_alter_table("deposits", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("credited_at", paydesk.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_deposits_network_status_height", ["network", "status", "block_height"], unique=False
        )

    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("received_merchant_amount", paydesk.db.Amount(), nullable=True)
        )
        batch_op.add_column(sa.Column("received_commission", paydesk.db.Amount(), nullable=True))
        batch_op.create_index("ix_invoices_network_address", ["network", "address"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_network_address")
        batch_op.drop_column("received_commission")
        batch_op.drop_column("received_merchant_amount")

    with op.batch_alter_table("deposits", schema=None) as batch_op:
        batch_op.drop_index("ix_deposits_network_status_height")
        batch_op.drop_column("credited_at")

    op.execute("DELETE FROM deposit_addresses WHERE key_owner <> ''")
    with op.batch_alter_table("deposit_addresses", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_deposit_addresses_network_key_owner_derivation_index"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_deposit_addresses_network_derivation_index"),
            ["network", "derivation_index"],
        )
        batch_op.drop_column("key_owner")

    op.execute("DELETE FROM address_counters WHERE key_owner <> ''")
    with op.batch_alter_table("address_counters", schema=None) as batch_op:
        batch_op.drop_constraint("pk_address_counters", type_="primary")
        batch_op.create_primary_key("pk_address_counters", ["network"])
        batch_op.drop_column("key_owner")

    op.drop_table("merchant_xpubs")
    op.drop_table("master_seeds")
    with op.batch_alter_table("devnet_transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devnet_transactions_block_height"))

    op.drop_table("devnet_transactions")
    op.drop_table("devnet_blocks")
    op.drop_table("chain_cursors")
    op.drop_table("chain_blocks")
