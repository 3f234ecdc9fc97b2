"""hosted checkout payments and Moneroo keys

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 11:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import paydesk.db

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "checkout_customers",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("public_id", sa.String(length=16), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("environment", sa.String(length=8), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("address", sa.String(length=200), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=100), nullable=True),
        sa.Column("country_code", sa.String(length=2), nullable=True),
        sa.Column("zip_code", sa.String(length=100), nullable=True),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_checkout_customers_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_customers")),
        sa.UniqueConstraint(
            "merchant_id",
            "environment",
            "email",
            name=op.f("uq_checkout_customers_merchant_id_environment_email"),
        ),
        sa.UniqueConstraint("public_id", name=op.f("uq_checkout_customers_public_id")),
    )
    op.create_table(
        "checkout_payments",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("public_id", sa.String(length=20), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("environment", sa.String(length=8), nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", paydesk.db.Amount(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("return_url", sa.Text(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("methods", sa.JSON(), nullable=False),
        sa.Column("restrict_country_code", sa.String(length=2), nullable=True),
        sa.Column("restricted_phone", sa.String(length=32), nullable=True),
        sa.Column("is_processed", sa.Boolean(), nullable=False),
        sa.Column("processed_at", paydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("method", sa.String(length=32), nullable=True),
        sa.Column("capture_id", sa.Uuid(), nullable=True),
        sa.Column("phone_number", sa.String(length=32), nullable=True),
        sa.Column("gateway_transaction_id", sa.String(length=128), nullable=True),
        sa.Column("gateway_status", sa.String(length=64), nullable=True),
        sa.Column("failure_message", sa.String(length=255), nullable=True),
        sa.Column("failure_error_code", sa.String(length=64), nullable=True),
        sa.Column("failure_error_type", sa.String(length=64), nullable=True),
        sa.Column("context", sa.JSON(), nullable=True),
        sa.Column(
            "invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("initiated_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["checkout_customers.id"],
            name=op.f("fk_checkout_payments_customer_id_checkout_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_checkout_payments_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_checkout_payments_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_payments")),
        sa.UniqueConstraint("public_id", name=op.f("uq_checkout_payments_public_id")),
    )
    with op.batch_alter_table("checkout_payments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_checkout_payments_merchant_id_id", ["merchant_id", "id"], unique=False
        )

    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("moneroo_sandbox_key_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("moneroo_sandbox_key_digest", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("moneroo_live_key_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("moneroo_live_key_digest", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("moneroo_webhook_secret_encrypted", sa.Text(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_merchants_moneroo_live_key_digest"), ["moneroo_live_key_digest"]
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_merchants_moneroo_sandbox_key_digest"), ["moneroo_sandbox_key_digest"]
        )


def downgrade() -> None:
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_merchants_moneroo_sandbox_key_digest"), type_="unique"
        )
        batch_op.drop_constraint(batch_op.f("uq_merchants_moneroo_live_key_digest"), type_="unique")
        batch_op.drop_column("moneroo_webhook_secret_encrypted")
        batch_op.drop_column("moneroo_live_key_digest")
        batch_op.drop_column("moneroo_live_key_encrypted")
        batch_op.drop_column("moneroo_sandbox_key_digest")
        batch_op.drop_column("moneroo_sandbox_key_encrypted")

    with op.batch_alter_table("checkout_payments", schema=None) as batch_op:
        batch_op.drop_index("ix_checkout_payments_merchant_id_id")

    op.drop_table("checkout_payments")
    op.drop_table("checkout_customers")
