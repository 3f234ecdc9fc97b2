"""Bitcoin-family sweeps: the fee a stored sweep transaction pays, fixed when it is signed.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 16:33:47
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import paydesk.db

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signed_fee", paydesk.db.Amount(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_column("signed_fee")
