"""Payment tables: plans, Stripe customers, subscriptions, webhook receipts, idempotency keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, Timestamps, UUIDv7Key


class Plan(Timestamps, Base):
    """A platform premium plan, mirrored as a Stripe plan with the same id."""

    __tablename__ = "plans"
    __table_args__ = (
        CheckConstraint("tier IN ('plus', 'pro')", name="tier"),
        CheckConstraint("interval IN ('month', 'year')", name="interval"),
        CheckConstraint("amount_cents > 0", name="amount_positive"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    tier: Mapped[str] = mapped_column(String(20))
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(8))
    benefits: Mapped[list[str]] = mapped_column(ARRAY(String(40)))


class StripeCustomer(Timestamps, Base):
    """The Stripe customer behind a user (one each)."""

    __tablename__ = "stripe_customers"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    stripe_customer_id: Mapped[str] = mapped_column(String(64), unique=True)


class Subscription(UUIDv7Key, Timestamps, Base):
    """A user's subscription to a plan, kept in step with Stripe by webhooks."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint(
            "status IN ('incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid')",
            name="status",
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    stripe_subscription_id: Mapped[str] = mapped_column(String(64), unique=True)
    # The key sent with the Stripe create call, so a retry of this operation cannot create a second one.
    stripe_idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    status: Mapped[str] = mapped_column(String(24))
    current_period_end: Mapped[datetime]
    cancel_at_period_end: Mapped[bool] = mapped_column(server_default="false")
    cancel_at: Mapped[datetime | None]
    promo_code: Mapped[str | None] = mapped_column(String(64))
    # Stripe ``created`` of the newest event applied, so an older event delivered late changes nothing.
    last_event_at: Mapped[int] = mapped_column(BigInteger, server_default="0")


class WebhookEvent(Base):
    """A Stripe event id seen once; a redelivery finds it here and does nothing."""

    __tablename__ = "stripe_webhook_events"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    type: Mapped[str] = mapped_column(String(80))
    created: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime]


class IdempotencyKey(UUIDv7Key, Base):
    """A client's Idempotency-Key for one money-moving request, and the response it got."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "scope", "key"),
        CheckConstraint("state IN ('in_flight', 'done')", name="state"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(60))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class LedgerEntry(UUIDv7Key, Base):
    """One leg of a double-entry money movement; the legs of a ``transaction_id`` sum to zero."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        # One leg per account per Stripe object and kind, so a replayed event cannot book twice.
        UniqueConstraint("source_ref", "kind", "account"),
        CheckConstraint("kind IN ('charge', 'refund', 'fee')", name="kind"),
        CheckConstraint("amount_cents <> 0", name="amount_nonzero"),
    )

    transaction_id: Mapped[uuid.UUID] = mapped_column(index=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    account: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(10))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    source_ref: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
