"""partial ticket refunds, the seat price of holds and offers, organizer payout accounts

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 12:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ticket_refunds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("fee_cents", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=120), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("stripe_refund_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("amount_cents > 0", name=op.f("ck_ticket_refunds_amount_positive")),
        sa.CheckConstraint("fee_cents >= 0", name=op.f("ck_ticket_refunds_fee_not_negative")),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name=op.f("ck_ticket_refunds_status")),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["ticket_payments.id"],
            name=op.f("fk_ticket_refunds_payment_id_ticket_payments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["users.id"], name=op.f("fk_ticket_refunds_requested_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_refunds")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_ticket_refunds_idempotency_key")),
        sa.UniqueConstraint("stripe_refund_id", name=op.f("uq_ticket_refunds_stripe_refund_id")),
    )
    op.create_index(op.f("ix_ticket_refunds_payment_id"), "ticket_refunds", ["payment_id"], unique=False)
    op.create_index(
        "ix_ticket_refunds_pending",
        "ticket_refunds",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "payout_accounts",
        sa.Column("organizer_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("holder_name", sa.String(length=120), nullable=False),
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("provider IN ('manual', 'stripe_connect')", name=op.f("ck_payout_accounts_provider")),
        sa.ForeignKeyConstraint(
            ["organizer_id"], ["users.id"], name=op.f("fk_payout_accounts_organizer_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("organizer_id", name=op.f("pk_payout_accounts")),
    )
    op.add_column("payouts", sa.Column("destination", sa.String(length=64), nullable=True))
    op.add_column("ticket_payments", sa.Column("fee_refunded_cents", sa.Integer(), server_default="0", nullable=False))
    # Payments refunded before partial refunds existed gave their whole fee back.
    op.execute("UPDATE ticket_payments SET fee_refunded_cents = fee_cents WHERE status = 'refunded'")
    op.create_check_constraint(
        op.f("ck_ticket_payments_fee_refund_within"),
        "ticket_payments",
        "fee_refunded_cents >= 0 AND fee_refunded_cents <= fee_cents",
    )
    op.add_column("event_rsvps", sa.Column("seat_price_cents", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_event_rsvps_seat_price_not_negative"),
        "event_rsvps",
        "seat_price_cents IS NULL OR seat_price_cents >= 0",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_event_rsvps_seat_price_not_negative"), "event_rsvps", type_="check")
    op.drop_column("event_rsvps", "seat_price_cents")
    op.drop_constraint(op.f("ck_ticket_payments_fee_refund_within"), "ticket_payments", type_="check")
    op.drop_column("ticket_payments", "fee_refunded_cents")
    op.drop_column("payouts", "destination")
    op.drop_table("payout_accounts")
    op.drop_index(
        "ix_ticket_refunds_pending", table_name="ticket_refunds", postgresql_where=sa.text("status = 'pending'")
    )
    op.drop_index(op.f("ix_ticket_refunds_payment_id"), table_name="ticket_refunds")
    op.drop_table("ticket_refunds")
