"""deposit sweeps to the hot wallet

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import paydesk.db

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("derivation_index", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("last_deposit_id", sa.BigInteger(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("native", sa.String(length=16), nullable=False),
        sa.Column("to_address", sa.String(length=128), nullable=True),
        sa.Column("amount", paydesk.db.Amount(), nullable=True),
        sa.Column("funding_txid", sa.String(length=128), nullable=True),
        sa.Column("funding_tx", sa.Text(), nullable=True),
        sa.Column("funding_nonce", sa.BigInteger(), nullable=True),
        sa.Column("funding_amount", paydesk.db.Amount(), nullable=True),
        sa.Column("funded", paydesk.db.Amount(), nullable=False),
        sa.Column("funding_fee", paydesk.db.Amount(), nullable=False),
        sa.Column("txid", sa.String(length=128), nullable=True),
        sa.Column("signed_tx", sa.Text(), nullable=True),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("block_height", sa.BigInteger(), nullable=True),
        sa.Column("transfer_fee", paydesk.db.Amount(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("next_attempt_at", paydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", paydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweeps")),
        sa.UniqueConstraint("uuid", name=op.f("uq_sweeps_uuid")),
    )
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sweeps_network_address_currency", ["network", "address", "currency"], unique=False
        )
        batch_op.create_index("ix_sweeps_network_stage", ["network", "stage"], unique=False)
        batch_op.create_index(batch_op.f("ix_sweeps_txid"), ["txid"], unique=False)
        batch_op.create_index(
            "uq_sweeps_open",
            ["network", "address", "currency"],
            unique=True,
            postgresql_where=sa.text("stage IN ('queued', 'funding', 'signed', 'sent')"),
            sqlite_where=sa.text("stage IN ('queued', 'funding', 'signed', 'sent')"),
        )

    op.create_table(
        "sweep_top_ups",
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("txid", sa.String(length=128), nullable=False),
        sa.Column("sweep_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sweep_id"], ["sweeps.id"], name=op.f("fk_sweep_top_ups_sweep_id_sweeps")
        ),
        sa.PrimaryKeyConstraint("network", "txid", name=op.f("pk_sweep_top_ups")),
    )
    with op.batch_alter_table("sweep_top_ups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sweep_top_ups_sweep_id"), ["sweep_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sweep_top_ups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sweep_top_ups_sweep_id"))

    op.drop_table("sweep_top_ups")
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_sweeps_open",
            postgresql_where=sa.text("stage IN ('queued', 'funding', 'signed', 'sent')"),
            sqlite_where=sa.text("stage IN ('queued', 'funding', 'signed', 'sent')"),
        )
        batch_op.drop_index(batch_op.f("ix_sweeps_txid"))
        batch_op.drop_index("ix_sweeps_network_stage")
        batch_op.drop_index("ix_sweeps_network_address_currency")

    op.drop_table("sweeps")
