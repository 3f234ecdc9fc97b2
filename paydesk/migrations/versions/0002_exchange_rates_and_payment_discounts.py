"""exchange rates and payment discounts

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import paydesk.db

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exchange_rates",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("base", sa.String(length=16), nullable=False),
        sa.Column("quote", sa.String(length=16), nullable=False),
        sa.Column("value", paydesk.db.Amount(), nullable=False),
        sa.Column("as_of", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("fetched_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "base", "quote", name=op.f("pk_exchange_rates")),
    )
    op.create_table(
        "payment_discounts",
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("updated_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_payment_discounts_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint(
            "merchant_id", "currency", "network", name=op.f("pk_payment_discounts")
        ),
    )


def downgrade() -> None:
    op.drop_table("payment_discounts")
    op.drop_table("exchange_rates")
