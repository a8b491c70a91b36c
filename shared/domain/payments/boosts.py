"""Boosts: paid, time-boxed prominence for an event or a profile, and the SQL other lists rank by.

A boost is live while ``starts_at <= now < ends_at``. The ``status`` column is kept in step by the
``refresh_boosts`` job for reporting, but every read derives the live state from the window and the
clock, so a late job never leaves a boost shown past its end or hidden after its start.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

import msgspec
import structlog
from sqlalchemy import ColumnElement, Select, and_, case, exists, func, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import bus, ids
from shared.clock import utcnow
from shared.config import Settings
from shared.domain.auth.tokens import AccessClaims
from shared.domain.events.models import Event, EventStatus
from shared.domain.payments.ledger import book_platform_charge
from shared.domain.payments.models import Boost
from shared.domain.payments.services import CURRENCY, PaymentService
from shared.domain.payments.stripe_client import StripeGateway
from shared.domain.users.models import User
from shared.errors import Conflict, FieldError, InvalidInput, NotFound, PaymentFailed, PermissionDenied

log = structlog.get_logger("payments.boosts")

Placement = Literal["discover_feed", "search"]
PLACEMENTS: tuple[str, ...] = ("discover_feed", "search")
# A boost may be booked this far ahead; starts a little in the past (clock skew) count as "now".
MAX_LEAD = timedelta(days=90)
START_TOLERANCE = timedelta(minutes=5)


class BoostRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Buy a boost: ``hours`` from ``starts_at`` (default now) in one placement.

    Seed 000 spells the fields ``duration_hours`` and ``boost_type``; either spelling is accepted.
    """

    payment_method_id: str
    placement: str | None = None
    hours: int | None = None
    starts_at: datetime | None = None
    duration_hours: int | None = None
    boost_type: str | None = None


class BoostView(msgspec.Struct, frozen=True):
    """A boost and where it stands now."""

    boost_id: str
    status: str
    placement: str
    event_id: str | None
    user_id: str | None
    starts_at: datetime
    ends_at: datetime
    hours: int
    amount_cents: int
    currency: str


def boost_status(boost: Boost, now: datetime) -> str:
    """``scheduled`` before the window, ``active`` inside it, ``expired`` after."""
    if now < boost.starts_at:
        return "scheduled"
    if now < boost.ends_at:
        return "active"
    return "expired"


def live_boost(now: datetime, placement: str) -> ColumnElement[bool]:
    """SQL: a ``boosts`` row of ``placement`` whose window contains ``now``."""
    return and_(Boost.placement == placement, Boost.starts_at <= now, Boost.ends_at > now)


def boosted_event_filter(now: datetime, placement: str = "discover_feed") -> ColumnElement[bool]:
    """SQL over ``events``: the event has a live boost in ``placement`` (use it to rank or to pick sponsored)."""
    return exists().where(Boost.event_id == Event.id, live_boost(now, placement))


def boosted_user_filter(now: datetime, placement: str = "search") -> ColumnElement[bool]:
    """SQL over ``users``: the profile has a live boost in ``placement``."""
    return exists().where(Boost.target_user_id == User.id, live_boost(now, placement))


def boost_rank(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """0 for boosted rows and 1 for the rest, to put first in an ascending ORDER BY."""
    return case((condition, literal(0)), else_=literal(1))


def sponsored_events_query(now: datetime, city: str, limit: int) -> Select[uuid.UUID]:
    """Ids of published, public, upcoming events in ``city`` with a live ``discover_feed`` boost."""
    return (
        select(Event.id)
        .where(
            boosted_event_filter(now, "discover_feed"),
            Event.status == EventStatus.PUBLISHED.value,
            Event.visibility == "public",
            Event.end_time > now,
            Event.city.is_not(None),
            func.lower(Event.city) == city.strip().lower(),
        )
        .order_by(Event.start_time, Event.id)
        .limit(limit)
    )


class BoostService:
    """Buy boosts with a PaymentIntent, show them, and keep their stored status in step with the clock."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        stripe: StripeGateway,
        payments: PaymentService,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._stripe = stripe
        self._payments = payments
        self._clock = clock

    def price_per_hour(self, placement: str) -> int:
        """Cents per hour of a placement, from settings."""
        if placement == "search":
            return self._settings.boost_search_cents_per_hour
        return self._settings.boost_discover_feed_cents_per_hour

    def _validate(self, data: BoostRequest, now: datetime) -> tuple[str, int, datetime]:
        errors: list[FieldError] = []
        if data.placement is not None and data.boost_type is not None and data.placement != data.boost_type:
            errors.append(FieldError("placement", "placement and boost_type disagree"))
        placement = data.placement or data.boost_type or "discover_feed"
        if placement not in PLACEMENTS:
            errors.append(FieldError("placement", "must be discover_feed or search"))
        if data.hours is not None and data.duration_hours is not None and data.hours != data.duration_hours:
            errors.append(FieldError("hours", "hours and duration_hours disagree"))
        hours = data.hours if data.hours is not None else data.duration_hours
        if hours is None:
            errors.append(FieldError("hours", "required"))
        elif not 1 <= hours <= self._settings.boost_max_hours:
            errors.append(FieldError("hours", f"must be 1 to {self._settings.boost_max_hours}"))
        starts_at = data.starts_at or now
        if starts_at.tzinfo is None:
            errors.append(FieldError("starts_at", "must include a time zone"))
        elif starts_at < now - START_TOLERANCE:
            errors.append(FieldError("starts_at", "must not be in the past"))
        elif starts_at > now + MAX_LEAD:
            errors.append(FieldError("starts_at", "must be within 90 days"))
        if not data.payment_method_id.strip():
            errors.append(FieldError("payment_method_id", "required"))
        if errors:
            raise InvalidInput(errors=errors)
        assert hours is not None
        return placement, hours, max(starts_at, now)

    async def boost_event(self, caller: AccessClaims, event_id: uuid.UUID, data: BoostRequest) -> BoostView:
        """Boost an event you organize; it must be published and not over."""
        now = self._clock()
        placement, hours, starts_at = self._validate(data, now)
        async with self._sessions() as session:
            event = await session.get(Event, event_id)
        if event is None or (event.status == EventStatus.DRAFT.value and event.organizer_id != caller.user_id):
            raise NotFound("no such event", code="not_found")
        if event.organizer_id != caller.user_id:
            raise PermissionDenied("only the organizer can boost this event", code="not_organizer")
        if event.status != EventStatus.PUBLISHED.value or event.end_time <= now:
            raise Conflict("only a published, upcoming event can be boosted", code="event_not_boostable")
        return await self._buy(caller.user_id, placement, hours, starts_at, data.payment_method_id, event_id=event_id)

    async def boost_user(self, caller: AccessClaims, user_id: uuid.UUID, data: BoostRequest) -> BoostView:
        """Boost your own profile."""
        now = self._clock()
        placement, hours, starts_at = self._validate(data, now)
        if user_id != caller.user_id:
            raise PermissionDenied("you can only boost your own profile", code="forbidden")
        return await self._buy(
            caller.user_id, placement, hours, starts_at, data.payment_method_id, target_user_id=user_id
        )

    async def _buy(
        self,
        buyer_id: uuid.UUID,
        placement: str,
        hours: int,
        starts_at: datetime,
        payment_method_id: str,
        *,
        event_id: uuid.UUID | None = None,
        target_user_id: uuid.UUID | None = None,
    ) -> BoostView:
        amount = self.price_per_hour(placement) * hours
        ends_at = starts_at + timedelta(hours=hours)
        target = event_id or target_user_id
        assert target is not None
        on_target = Boost.event_id == event_id if event_id is not None else Boost.target_user_id == target_user_id
        customer_id = await self._payments.customer_for(buyer_id)
        local_id = ids.uuid7()
        async with self._sessions.begin() as session:
            # One purchase per target and placement at a time, so two overlapping windows cannot both be sold.
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"boost:{target}:{placement}"}
            )
            overlapping = await session.scalar(
                select(Boost.id)
                .where(on_target, Boost.placement == placement, Boost.starts_at < ends_at, Boost.ends_at > starts_at)
                .limit(1)
            )
            if overlapping is not None:
                raise Conflict("a boost in this placement already covers part of that window", code="boost_overlaps")
            metadata = {"boost_id": ids.encode(ids.Prefix.BOOST, local_id), "placement": placement}
            intent = await self._stripe.charge_once(
                customer_id, payment_method_id, amount, CURRENCY, metadata, f"boost-{local_id}"
            )
            if intent.status != "succeeded":
                # Boosts are bought in one step; a card that needs authentication is refused, not left pending.
                raise PaymentFailed(
                    "this card needs authentication; use another card for boosts", code="payment_requires_action"
                )
            now = self._clock()
            boost = Boost(
                id=local_id,
                buyer_id=buyer_id,
                event_id=event_id,
                target_user_id=target_user_id,
                placement=placement,
                starts_at=starts_at,
                ends_at=ends_at,
                hours=hours,
                amount_cents=amount,
                currency=CURRENCY,
                status="active" if starts_at <= now else "scheduled",
                stripe_payment_intent_id=str(intent.id),
            )
            session.add(boost)
            await bus.record(
                session,
                bus.BoostPurchased(
                    boost_id=local_id,
                    buyer_id=buyer_id,
                    event_id=event_id,
                    target_user_id=target_user_id,
                    placement=placement,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    amount_cents=amount,
                ),
            )
            await book_platform_charge(
                session,
                now=now,
                source_ref=str(intent.id),
                payer_id=buyer_id,
                amount_cents=amount,
                currency=CURRENCY,
                description=f"{placement} boost, {hours} h",
            )
        log.info("boost bought", boost=str(local_id), placement=placement, hours=hours, amount=amount)
        return self._view(boost, self._clock())

    async def get_boost(self, caller: AccessClaims, boost_id: uuid.UUID) -> BoostView:
        """A boost you bought (or any, as an admin); others get 404."""
        async with self._sessions() as session:
            boost = await session.get(Boost, boost_id)
        if boost is None or (boost.buyer_id != caller.user_id and "admin" not in caller.roles):
            raise NotFound("no such boost", code="not_found")
        return self._view(boost, self._clock())

    async def refresh_statuses(self, now: datetime | None = None) -> int:
        """Move stored statuses to what the clock says; the number of rows changed."""
        return await refresh_boost_statuses(self._sessions, now or self._clock())

    def _view(self, boost: Boost, now: datetime) -> BoostView:
        return BoostView(
            boost_id=ids.encode(ids.Prefix.BOOST, boost.id),
            status=boost_status(boost, now),
            placement=boost.placement,
            event_id=ids.encode(ids.Prefix.EVENT, boost.event_id) if boost.event_id else None,
            user_id=ids.encode(ids.Prefix.USER, boost.target_user_id) if boost.target_user_id else None,
            starts_at=boost.starts_at,
            ends_at=boost.ends_at,
            hours=boost.hours,
            amount_cents=boost.amount_cents,
            currency=boost.currency,
        )


async def refresh_boost_statuses(sessions: async_sessionmaker[AsyncSession], now: datetime) -> int:
    """Stored ``status`` follows the window (``scheduled`` → ``active`` → ``expired``); the rows changed."""
    live = case(
        (Boost.starts_at > now, literal("scheduled")),
        (Boost.ends_at > now, literal("active")),
        else_=literal("expired"),
    )
    async with sessions.begin() as session:
        result = await session.execute(
            update(Boost).where(Boost.status != "expired", Boost.status != live).values(status=live).returning(Boost.id)
        )
        changed = len(result.all())
    if changed:
        log.info("boost statuses refreshed", changed=changed)
    return changed
