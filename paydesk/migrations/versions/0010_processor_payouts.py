"""processor payouts (the Moneroo dialect)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rail", sa.String(length=16), server_default="chain", nullable=False)
        )
        batch_op.add_column(sa.Column("public_id", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("environment", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("method", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("recipient", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("description", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("metadata", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.add_column(sa.Column("gateway_status", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("failure_message", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("failure_error_code", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("failure_error_type", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_payouts_rail_stage", ["rail", "stage"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_payouts_public_id"), ["public_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_payouts_customer_id_checkout_customers"),
            "checkout_customers",
            ["customer_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_payouts_customer_id_checkout_customers"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("uq_payouts_public_id"), type_="unique")
        batch_op.drop_index("ix_payouts_rail_stage")
        batch_op.drop_column("failure_error_type")
        batch_op.drop_column("failure_error_code")
        batch_op.drop_column("failure_message")
        batch_op.drop_column("gateway_status")
        batch_op.drop_column("customer_id")
        batch_op.drop_column("metadata")
        batch_op.drop_column("description")
        batch_op.drop_column("recipient")
        batch_op.drop_column("method")
        batch_op.drop_column("environment")
        batch_op.drop_column("public_id")
        batch_op.drop_column("rail")
