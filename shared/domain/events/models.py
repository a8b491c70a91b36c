"""Events, RSVPs with their history, check-in staff, calendar feeds and sent reminders."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, Timestamps, UUIDv7Key


class EventStatus(StrEnum):
    """Lifecycle: draft → published → cancelled | completed."""

    DRAFT = "draft"
    PUBLISHED = "published"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


class Visibility(StrEnum):
    """``public``: listed; ``club``: the club's active members; ``private``: unlisted, reachable by id."""

    PUBLIC = "public"
    CLUB = "club"
    PRIVATE = "private"


class EventKind(StrEnum):
    """A regular event or seed 004's small "looking for partners" activity."""

    EVENT = "event"
    ACTIVITY = "activity"


class AddressVisibility(StrEnum):
    """Who sees the exact address: everyone, or confirmed attendees and the organizers."""

    PUBLIC = "public"
    ATTENDEES = "attendees"


class RsvpStatus(StrEnum):
    """Where one person's RSVP stands; ``confirmed``, ``held`` and ``offered`` take seats."""

    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    PENDING_APPROVAL = "pending_approval"
    MAYBE = "maybe"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    # Paid events: seats held while a payment runs, or offered to the waitlist head until it pays.
    HELD = "held"
    OFFERED = "offered"


class PaymentProvider(StrEnum):
    """How a paid event's tickets are paid: by card through Stripe, or at the door."""

    STRIPE = "stripe"
    PAY_AT_VENUE = "pay_at_venue"


class AutoApproveRule(StrEnum):
    """Who skips the organizer's approval on an approval-gated event."""

    CLUB_MEMBERS = "club_members"
    FRIENDS_OF_ORGANIZER = "friends_of_organizer"
    VOUCHED_BY_ORGANIZER = "vouched_by_organizer"


class ReminderKind(StrEnum):
    """How long before the start a reminder goes out."""

    DAY = "24h"
    HOUR = "1h"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Event(UUIDv7Key, Timestamps, Base):
    """An event; ``seats_taken`` is the sum of confirmed, held and offered seats and never exceeds ``capacity``."""

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint(_in("status", EventStatus), name="status"),
        CheckConstraint(_in("visibility", Visibility), name="visibility"),
        CheckConstraint(_in("kind", EventKind), name="kind"),
        CheckConstraint(_in("address_visibility", AddressVisibility), name="address_visibility"),
        CheckConstraint("ticket_type IN ('free', 'paid')", name="ticket_type"),
        CheckConstraint("end_time > start_time", name="ends_after_start"),
        CheckConstraint("capacity IS NULL OR capacity > 0", name="capacity_positive"),
        # The last line of defence against overselling, whatever the code above it does.
        CheckConstraint("seats_taken >= 0 AND (capacity IS NULL OR seats_taken <= capacity)", name="seats_within"),
        CheckConstraint("latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180", name="coordinates"),
        CheckConstraint("visibility <> 'club' OR club_id IS NOT NULL", name="club_visibility_needs_club"),
        CheckConstraint("required_tier IS NULL OR required_tier IN ('plus', 'pro')", name="required_tier"),
        CheckConstraint("jsonb_typeof(auto_approve) = 'array'", name="auto_approve_is_array"),
        Index("ix_events_status_start_time", "status", "start_time", "id"),
        # Feeds read newly published events per club and per organizer, newest first.
        Index("ix_events_club_feed", "club_id", "published_at", "id", postgresql_where=text("status = 'published'")),
        Index(
            "ix_events_organizer_feed",
            "organizer_id",
            "published_at",
            "id",
            postgresql_where=text("status = 'published' AND visibility = 'public'"),
        ),
        Index("ix_events_tags", "tags", postgresql_using="gin"),
        Index("ix_events_city", text("lower(city)")),
        # Radius queries: earth_box(...) @> ll_to_earth(lat, lng) uses this GiST index.
        Index("ix_events_earth", text("ll_to_earth(latitude, longitude)"), postgresql_using="gist"),
        # Map (bbox) queries: point(lng, lat) <@ box(...) uses this one.
        Index("ix_events_point", text("point(longitude, latitude)"), postgresql_using="gist"),
        CheckConstraint(_in("payment_provider", PaymentProvider), name="payment_provider"),
        CheckConstraint("refund_until_hours >= 0", name="refund_until_hours"),
    )

    organizer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    club_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(140))
    description: Mapped[str | None] = mapped_column(String(5000))
    start_time: Mapped[datetime]
    end_time: Mapped[datetime]
    timezone: Mapped[str] = mapped_column(String(64))
    location_name: Mapped[str] = mapped_column(String(200))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(String(500))
    city: Mapped[str | None] = mapped_column(String(120))
    address_visibility: Mapped[str] = mapped_column(String(16))
    capacity: Mapped[int | None]
    seats_taken: Mapped[int] = mapped_column(server_default="0")
    # Next waitlist ticket number; taken under the event's row lock, so it follows commit order.
    next_queue_seq: Mapped[int] = mapped_column(BigInteger, server_default="1")
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(30)), server_default="{}")
    visibility: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    skill_level: Mapped[str | None] = mapped_column(String(30))
    requires_approval: Mapped[bool] = mapped_column(server_default=text("false"))
    ticket_type: Mapped[str] = mapped_column(String(8))
    price_cents: Mapped[int] = mapped_column(server_default="0")
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    # iCalendar SEQUENCE: bumped by every organizer change so calendars replace their copy.
    sequence: Mapped[int] = mapped_column(server_default="0")
    published_at: Mapped[datetime | None]
    # Rules (AutoApproveRule values) that let matching people skip approval on a gated event.
    auto_approve: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    # Only users whose premium tier is at least this may RSVP going/maybe; None opens the event to all.
    required_tier: Mapped[str | None] = mapped_column(String(20))
    payment_provider: Mapped[str] = mapped_column(String(16), server_default="stripe")
    # Refund policy: an attendee cancelling at least this many hours before the start is refunded in full.
    refund_until_hours: Mapped[int] = mapped_column(server_default="24")


class Rsvp(UUIDv7Key, Timestamps, Base):
    """One person's answer to one event; ``queue_seq`` orders the waitlist (arrival order)."""

    __tablename__ = "event_rsvps"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id"),
        CheckConstraint(_in("status", RsvpStatus), name="status"),
        CheckConstraint("guest_count BETWEEN 0 AND 5", name="guest_count"),
        CheckConstraint("status <> 'waitlisted' OR queue_seq IS NOT NULL", name="waitlisted_has_seq"),
        CheckConstraint("status = 'confirmed' OR ticket_code IS NULL", name="ticket_only_confirmed"),
        UniqueConstraint("event_id", "queue_seq"),
        Index("ix_event_rsvps_event_id_status", "event_id", "status", "queue_seq"),
        Index("ix_event_rsvps_user_id_status", "user_id", "status"),
        CheckConstraint("status NOT IN ('held', 'offered') OR hold_expires_at IS NOT NULL", name="hold_has_expiry"),
        CheckConstraint("seat_price_cents IS NULL OR seat_price_cents >= 0", name="seat_price_not_negative"),
        Index(
            "ix_event_rsvps_hold_expires_at", "hold_expires_at", postgresql_where=text("hold_expires_at IS NOT NULL")
        ),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20))
    guest_count: Mapped[int] = mapped_column(server_default="0")
    queue_seq: Mapped[int | None] = mapped_column(BigInteger)
    # When this RSVP took the event lock (clock_timestamp()), i.e. its place in commit order.
    queued_at: Mapped[datetime | None]
    ticket_code: Mapped[str | None] = mapped_column(String(64), unique=True)
    checked_in_at: Mapped[datetime | None]
    checked_in_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # When a ``held`` or ``offered`` RSVP gives its seats back unless paid.
    hold_expires_at: Mapped[datetime | None]
    # The price per seat when the seats were held or offered: what the holder pays even if the price changed since.
    seat_price_cents: Mapped[int | None]

    @property
    def seats(self) -> int:
        """Seats this RSVP holds or asks for: the person plus their guests."""
        return 1 + self.guest_count


class RsvpChange(Base):
    """Every status change of an RSVP, promotions included; ``id`` orders them."""

    __tablename__ = "event_rsvp_history"
    __table_args__ = (Index("ix_event_rsvp_history_event_id_id", "event_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    rsvp_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("event_rsvps.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    guest_count: Mapped[int]
    reason: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=text("clock_timestamp()"))


class EventStaff(Base):
    """A user allowed to check people in at one event."""

    __tablename__ = "event_staff"

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), server_default="checkin_staff")
    added_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class CalendarFeed(Base):
    """A user's calendar subscription token (stored hashed); rotating replaces it, deleting revokes it."""

    __tablename__ = "calendar_feeds"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime]


class ReminderSent(Base):
    """One reminder handed to the outbox; the key makes each (event, user, kind, start time) go out once."""

    __tablename__ = "event_reminders_sent"
    __table_args__ = (CheckConstraint(_in("kind", ReminderKind), name="kind"),)

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(4), primary_key=True)
    start_time: Mapped[datetime] = mapped_column(primary_key=True)
    sent_at: Mapped[datetime]
