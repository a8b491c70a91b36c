"""Paid-ticket tables: one payment per ticket purchase (card or at the venue) and organizer payouts."""

from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, Timestamps, UUIDv7Key

# A payment in one of these states is the RSVP's live one; at most one per RSVP.
LIVE_PAYMENT_STATUSES = ("pending", "succeeded", "unpaid", "paid")


class TicketPayment(UUIDv7Key, Timestamps, Base):
    """Money for one RSVP's seats: a Stripe PaymentIntent, or a pay-at-venue ticket (unpaid → paid)."""

    __tablename__ = "ticket_payments"
    __table_args__ = (
        CheckConstraint("provider IN ('stripe', 'pay_at_venue')", name="provider"),
        CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed', 'refunded', 'unpaid', 'paid', 'void')", name="status"
        ),
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint("seats > 0", name="seats_positive"),
        CheckConstraint("fee_cents >= 0 AND fee_cents <= amount_cents", name="fee_within"),
        CheckConstraint("refunded_cents >= 0 AND refunded_cents <= amount_cents", name="refund_within"),
        CheckConstraint("fee_refunded_cents >= 0 AND fee_refunded_cents <= fee_cents", name="fee_refund_within"),
        Index(
            "ix_ticket_payments_live_rsvp",
            "rsvp_id",
            unique=True,
            postgresql_where=text("status IN ('pending', 'succeeded', 'unpaid', 'paid')"),
        ),
        Index("ix_ticket_payments_organizer_event", "organizer_id", "event_id"),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="RESTRICT"), index=True)
    rsvp_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("event_rsvps.id", ondelete="RESTRICT"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    organizer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    provider: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(12))
    seats: Mapped[int]
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    fee_cents: Mapped[int] = mapped_column(server_default="0")
    # Refunded or being refunded (pending refunds count, so concurrent refunds cannot exceed the charge).
    refunded_cents: Mapped[int] = mapped_column(server_default="0")
    # The part of the platform fee given back with succeeded refunds (proportional; all of it on a full refund).
    fee_refunded_cents: Mapped[int] = mapped_column(server_default="0")
    # The Stripe key of the charge, so a retried request or job cannot charge twice.
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(String(300))


class Payout(UUIDv7Key, Timestamps, Base):
    """Money paid out to an organizer from their net ticket earnings."""

    __tablename__ = "payouts"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint("status IN ('paid', 'pending', 'failed')", name="status"),
        CheckConstraint("provider IN ('manual', 'stripe_connect')", name="provider"),
    )

    organizer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    provider: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(8))
    external_ref: Mapped[str | None] = mapped_column(String(80))
    # Where the money went (the organizer's payout account at the time), as the provider names it.
    destination: Mapped[str | None] = mapped_column(String(64))


class TicketRefund(UUIDv7Key, Timestamps, Base):
    """One Stripe refund of (part of) a ticket payment; ``pending`` while Stripe is asked, with its own key."""

    __tablename__ = "ticket_refunds"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint("fee_cents >= 0", name="fee_not_negative"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
        Index("ix_ticket_refunds_pending", "created_at", postgresql_where=text("status = 'pending'")),
    )

    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ticket_payments.id", ondelete="RESTRICT"), index=True)
    amount_cents: Mapped[int]
    # The platform fee this refund gave back (set when it succeeds).
    fee_cents: Mapped[int] = mapped_column(server_default="0")
    status: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(120))
    requested_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The Idempotency-Key sent to Stripe; a refund seen only in Stripe (the dashboard) gets a derived one.
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    stripe_refund_id: Mapped[str | None] = mapped_column(String(64), unique=True)


class PayoutAccount(Timestamps, Base):
    """Where an organizer's payouts go, as the payout provider names it (a bank reference or an ``acct_`` id)."""

    __tablename__ = "payout_accounts"
    __table_args__ = (CheckConstraint("provider IN ('manual', 'stripe_connect')", name="provider"),)

    organizer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    holder_name: Mapped[str] = mapped_column(String(120))
    destination: Mapped[str] = mapped_column(String(64))
