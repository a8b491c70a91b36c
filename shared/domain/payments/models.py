"""Payment tables: plans, Stripe customers, subscriptions, webhook receipts, idempotency keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
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
        CheckConstraint("(plan_id IS NULL) <> (member_tier_id IS NULL)", name="plan_or_member_tier"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # A platform plan, or (``member_tier_id``) a creator's or club's paid tier; exactly one is set.
    plan_id: Mapped[str | None] = mapped_column(ForeignKey("plans.id"))
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
    member_tier_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("member_tiers.id", ondelete="RESTRICT"), index=True
    )


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


class Boost(UUIDv7Key, Timestamps, Base):
    """Paid, time-boxed prominence for an event or a user profile in one placement."""

    __tablename__ = "boosts"
    __table_args__ = (
        CheckConstraint("placement IN ('discover_feed', 'search')", name="placement"),
        CheckConstraint("status IN ('scheduled', 'active', 'expired')", name="status"),
        CheckConstraint("(event_id IS NULL) <> (target_user_id IS NULL)", name="one_target"),
        CheckConstraint("ends_at > starts_at", name="window"),
        CheckConstraint("hours > 0", name="hours_positive"),
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        Index("ix_boosts_placement_window", "placement", "starts_at", "ends_at"),
    )

    buyer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    target_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    placement: Mapped[str] = mapped_column(String(20))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    hours: Mapped[int] = mapped_column(Integer)
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    # Written by the ``refresh_boosts`` job; reads derive the live status from the window and ``now``.
    status: Mapped[str] = mapped_column(String(10))
    stripe_payment_intent_id: Mapped[str] = mapped_column(String(64), unique=True)


class PromoCode(Timestamps, Base):
    """A promo code off the first invoice of a plan or tier subscription; redemptions are capped in the DB."""

    __tablename__ = "promo_codes"
    __table_args__ = (
        CheckConstraint("percent_off > 0 AND percent_off <= 100", name="percent_off"),
        CheckConstraint("max_redemptions IS NULL OR max_redemptions > 0", name="max_positive"),
        CheckConstraint(
            "redemption_count >= 0 AND (max_redemptions IS NULL OR redemption_count <= max_redemptions)",
            name="within_max",
        ),
        CheckConstraint("club_id IS NULL OR owner_id IS NOT NULL", name="club_has_owner"),
    )

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    percent_off: Mapped[int] = mapped_column(Integer)
    max_redemptions: Mapped[int | None] = mapped_column(Integer)
    redemption_count: Mapped[int] = mapped_column(Integer, server_default="0")
    expires_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(server_default="true")
    # No owner: a platform code for the plans. An owner: their own tiers; with a club: that club's tiers.
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    club_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clubs.id", ondelete="CASCADE"), index=True)


class PromoRedemption(UUIDv7Key, Base):
    """One user's use of one promo code (at most one each)."""

    __tablename__ = "promo_redemptions"
    __table_args__ = (UniqueConstraint("code", "user_id"),)

    code: Mapped[str] = mapped_column(ForeignKey("promo_codes.code", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("subscriptions.id", ondelete="SET NULL"))
    discount_cents: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


class MemberTier(UUIDv7Key, Timestamps, Base):
    """A paid tier a creator offers their followers, or a club owner their members (a Stripe product and plan)."""

    __tablename__ = "member_tiers"
    __table_args__ = (
        CheckConstraint("interval IN ('month', 'year')", name="interval"),
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint("fee_bps >= 0 AND fee_bps <= 10000", name="fee_bps"),
    )

    # The creator, or the club's owner who gets the tier's earnings.
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    club_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(String(500), server_default="")
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(8))
    stripe_product_id: Mapped[str] = mapped_column(String(64))
    stripe_plan_id: Mapped[str] = mapped_column(String(64), unique=True)
    # The platform's cut (basis points) when the tier was created, so a later settings change is not retroactive.
    fee_bps: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(server_default="true")
