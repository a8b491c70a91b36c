"""Request and response bodies of the payments API."""

from __future__ import annotations

from datetime import date, datetime

import msgspec


class PlanOut(msgspec.Struct, frozen=True):
    """A premium plan with its price and benefits."""

    id: str
    name: str
    tier: str
    amount_cents: int
    currency: str
    interval: str
    benefits: list[str]


class PlanList(msgspec.Struct, frozen=True):
    """Every plan on offer."""

    items: list[PlanOut]


class SubscribeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Subscribe a user (yourself) to a plan with a payment method and an optional promo code."""

    user_id: str
    plan_id: str
    payment_method_id: str = msgspec.field()
    promo_code: str | None = None


class SubscribeResult(msgspec.Struct, frozen=True):
    """The subscription created; ``client_secret`` is set only when the client must still confirm a payment."""

    subscription_id: str
    status: str
    renewal_date: date
    client_secret: str | None


class SubscriptionView(msgspec.Struct, frozen=True):
    """A user's current subscription."""

    subscription_id: str
    plan_id: str
    tier: str
    status: str
    renewal_date: date
    cancel_at_period_end: bool
    cancel_at: datetime | None
    benefits: list[str]


class CancelResult(msgspec.Struct, frozen=True):
    """A subscription set to end with its paid period."""

    subscription_id: str
    status: str
    cancel_at: datetime


class WebhookAck(msgspec.Struct, frozen=True):
    """Webhook receipt: ``duplicate`` when the event id was already handled."""

    received: bool
    duplicate: bool


class PaymentEntry(msgspec.Struct, frozen=True):
    """One movement of the caller's money (their leg of a ledger transaction)."""

    id: str
    transaction_id: str
    kind: str
    amount_cents: int
    currency: str
    description: str
    created_at: datetime


class PaymentCursor(msgspec.Struct, frozen=True):
    """Keyset position in the payments history (newest first)."""

    id: str
