"""static wallets, payouts, payout lanes and allowlist

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:25:29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import paydesk.db

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payout_lanes",
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("next_nonce", sa.BigInteger(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", paydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("network", name=op.f("pk_payout_lanes")),
    )
    op.create_table(
        "payout_allowlist",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_payout_allowlist_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_allowlist")),
        sa.UniqueConstraint(
            "merchant_id",
            "network",
            "address",
            name=op.f("uq_payout_allowlist_merchant_id_network_address"),
        ),
    )
    with op.batch_alter_table("payout_allowlist", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payout_allowlist_merchant_id"), ["merchant_id"], unique=False
        )

    op.create_table(
        "static_wallets",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("url_callback", sa.String(length=255), nullable=True),
        sa.Column("from_referral_code", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("force_refund", sa.Boolean(), nullable=False),
        sa.Column("blocked_at", paydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("refunded_at", paydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_static_wallets_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_static_wallets")),
        sa.UniqueConstraint(
            "merchant_id", "order_id", name=op.f("uq_static_wallets_merchant_id_order_id")
        ),
        sa.UniqueConstraint("network", "address", name=op.f("uq_static_wallets_network_address")),
        sa.UniqueConstraint("uuid", name=op.f("uq_static_wallets_uuid")),
    )
    with op.batch_alter_table("static_wallets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_static_wallets_merchant_id"), ["merchant_id"], unique=False
        )

    op.create_table(
        "payouts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=True),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("wallet_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("amount", paydesk.db.Amount(), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("network_shown", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("is_subtract", sa.Boolean(), nullable=False),
        sa.Column("url_callback", sa.String(length=255), nullable=True),
        sa.Column("to_currency", sa.String(length=16), nullable=True),
        sa.Column("from_currency", sa.String(length=16), nullable=True),
        sa.Column("course_source", sa.String(length=20), nullable=True),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("memo", sa.String(length=30), nullable=True),
        sa.Column("payer_currency", sa.String(length=16), nullable=False),
        sa.Column("payer_amount", paydesk.db.Amount(), nullable=False),
        sa.Column("source_currency", sa.String(length=16), nullable=False),
        sa.Column(
            "source_account_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("merchant_amount", paydesk.db.Amount(), nullable=False),
        sa.Column("commission", paydesk.db.Amount(), nullable=False),
        sa.Column("fee", paydesk.db.Amount(), nullable=False),
        sa.Column("rate", paydesk.db.Amount(), nullable=True),
        sa.Column("balance_after", paydesk.db.Amount(), nullable=False),
        sa.Column("book", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("fail_reason", sa.String(length=32), nullable=True),
        sa.Column("approved_at", paydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("txid", sa.String(length=128), nullable=True),
        sa.Column("signed_tx", sa.Text(), nullable=True),
        sa.Column("from_address", sa.String(length=128), nullable=True),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("block_height", sa.BigInteger(), nullable=True),
        sa.Column("network_fee", paydesk.db.Amount(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("next_attempt_at", paydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", paydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", paydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", paydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_payouts_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["source_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_payouts_source_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["static_wallets.id"], name=op.f("fk_payouts_wallet_id_static_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint(
            "merchant_id", "order_id", name=op.f("uq_payouts_merchant_id_order_id")
        ),
        sa.UniqueConstraint("uuid", name=op.f("uq_payouts_uuid")),
    )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.create_index("ix_payouts_merchant_id_id", ["merchant_id", "id"], unique=False)
        batch_op.create_index("ix_payouts_network_stage", ["network", "stage"], unique=False)
        batch_op.create_index(batch_op.f("ix_payouts_txid"), ["txid"], unique=False)

    with op.batch_alter_table("deposits", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "wallet_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.add_column(sa.Column("held", sa.Boolean(), server_default="0", nullable=False))
        batch_op.create_index(batch_op.f("ix_deposits_wallet_id"), ["wallet_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_deposits_wallet_id_static_wallets"),
            "static_wallets",
            ["wallet_id"],
            ["id"],
        )

    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("payout_allowlist", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("payouts_held_until", paydesk.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_column("payouts_held_until")
        batch_op.drop_column("payout_allowlist")

    with op.batch_alter_table("deposits", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_deposits_wallet_id_static_wallets"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_deposits_wallet_id"))
        batch_op.drop_column("held")
        batch_op.drop_column("wallet_id")

    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payouts_txid"))
        batch_op.drop_index("ix_payouts_network_stage")
        batch_op.drop_index("ix_payouts_merchant_id_id")

    op.drop_table("payouts")
    with op.batch_alter_table("static_wallets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_static_wallets_merchant_id"))

    op.drop_table("static_wallets")
    with op.batch_alter_table("payout_allowlist", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payout_allowlist_merchant_id"))

    op.drop_table("payout_allowlist")
    op.drop_table("payout_lanes")
