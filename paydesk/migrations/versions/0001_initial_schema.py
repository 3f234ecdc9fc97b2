"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import paydesk.db

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "address_counters",
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("next_index", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("network", name=op.f("pk_address_counters")),
    )
    op.create_table(
        "deposit_addresses",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("derivation_index", sa.BigInteger(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=True),
        sa.Column("assigned_at", paydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deposit_addresses")),
        sa.UniqueConstraint(
            "network", "address", name=op.f("uq_deposit_addresses_network_address")
        ),
        sa.UniqueConstraint(
            "network",
            "derivation_index",
            name=op.f("uq_deposit_addresses_network_derivation_index"),
        ),
    )
    with op.batch_alter_table("deposit_addresses", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deposit_addresses_free",
            ["network", "derivation_index"],
            unique=False,
            postgresql_where=sa.text("assigned_at IS NULL"),
            sqlite_where=sa.text("assigned_at IS NULL"),
        )

    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "merchants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("payment_key_encrypted", sa.Text(), nullable=False),
        sa.Column("payout_key_encrypted", sa.Text(), nullable=False),
        sa.Column("payments_blocked", sa.Boolean(), nullable=False),
        sa.Column("payouts_blocked", sa.Boolean(), nullable=False),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_merchants_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchants")),
    )
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_merchants_user_id"), ["user_id"], unique=False)

    op.create_table(
        "idempotency_records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_idempotency_records_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_records")),
        sa.UniqueConstraint(
            "merchant_id", "key", name=op.f("uq_idempotency_records_merchant_id_key")
        ),
    )
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.create_index("ix_idempotency_records_created_at", ["created_at"], unique=False)

    op.create_table(
        "invoices",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("amount", paydesk.db.Amount(), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("to_currency", sa.String(length=16), nullable=True),
        sa.Column("course_source", sa.String(length=20), nullable=True),
        sa.Column("discount_percent", sa.Integer(), nullable=True),
        sa.Column("subtract", sa.Integer(), nullable=False),
        sa.Column("accuracy_payment_percent", paydesk.db.Amount(), nullable=False),
        sa.Column("is_payment_multiple", sa.Boolean(), nullable=False),
        sa.Column("lifetime", sa.Integer(), nullable=False),
        sa.Column("url_return", sa.String(length=255), nullable=True),
        sa.Column("url_success", sa.String(length=255), nullable=True),
        sa.Column("url_callback", sa.String(length=255), nullable=True),
        sa.Column("additional_data", sa.String(length=255), nullable=True),
        sa.Column("from_referral_code", sa.String(length=255), nullable=True),
        sa.Column("currencies", sa.JSON(), nullable=True),
        sa.Column("except_currencies", sa.JSON(), nullable=True),
        sa.Column("payer_currency", sa.String(length=16), nullable=True),
        sa.Column("network", sa.String(length=32), nullable=True),
        sa.Column("payer_amount", paydesk.db.Amount(), nullable=True),
        sa.Column("payer_amount_exchange_rate", paydesk.db.Amount(), nullable=True),
        sa.Column("rate_source", sa.String(length=32), nullable=True),
        sa.Column("discount", paydesk.db.Amount(), nullable=False),
        sa.Column("commission", paydesk.db.Amount(), nullable=True),
        sa.Column("merchant_amount", paydesk.db.Amount(), nullable=True),
        sa.Column("address", sa.String(length=128), nullable=True),
        sa.Column("payment_amount", paydesk.db.Amount(), nullable=True),
        sa.Column("from_address", sa.String(length=128), nullable=True),
        sa.Column("txid", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("expired_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_invoices_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint(
            "merchant_id", "order_id", name=op.f("uq_invoices_merchant_id_order_id")
        ),
        sa.UniqueConstraint("uuid", name=op.f("uq_invoices_uuid")),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index(
            "ix_invoices_merchant_id_created_at", ["merchant_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_invoices_merchant_id_id", ["merchant_id", "id"], unique=False)
        batch_op.create_index(
            "ix_invoices_status_expired_at", ["status", "expired_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_status_expired_at")
        batch_op.drop_index("ix_invoices_merchant_id_id")
        batch_op.drop_index("ix_invoices_merchant_id_created_at")

    op.drop_table("invoices")
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_index("ix_idempotency_records_created_at")

    op.drop_table("idempotency_records")
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_merchants_user_id"))

    op.drop_table("merchants")
    op.drop_table("users")
    with op.batch_alter_table("deposit_addresses", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_deposit_addresses_free",
            postgresql_where=sa.text("assigned_at IS NULL"),
            sqlite_where=sa.text("assigned_at IS NULL"),
        )

    op.drop_table("deposit_addresses")
    op.drop_table("address_counters")
