"""moneroo webhook endpoints

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import paydesk.db

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "moneroo_webhook_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("environment", sa.String(length=8), nullable=False),
        sa.Column("url", sa.String(length=255), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_moneroo_webhook_endpoints_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moneroo_webhook_endpoints")),
    )
    with op.batch_alter_table("moneroo_webhook_endpoints", schema=None) as batch_op:
        batch_op.create_index(
            "ix_moneroo_webhook_endpoints_merchant_id_environment",
            ["merchant_id", "environment"],
            unique=False,
        )

    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("endpoint_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_column("endpoint_id")

    with op.batch_alter_table("moneroo_webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_index("ix_moneroo_webhook_endpoints_merchant_id_environment")

    op.drop_table("moneroo_webhook_endpoints")
