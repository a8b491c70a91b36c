"""Domain events: typed wire payloads, the transactional outbox, and NATS subjects.

A service appends events with :func:`record` inside its transaction; the worker's
outbox relay later turns each row into an arq job (job id = row id) and a NATS
message on :func:`subject_for`. Nothing is published for a transaction that rolled back.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, UUIDv7Key

EVENTS_SUBJECT_PREFIX = "events"
OUTBOX_CHANNEL = "tribe_outbox"


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every domain event; the tag is its type, e.g. ``email.requested``."""

    version: int = 1


class EmailRequested(Event, frozen=True, kw_only=True, tag="email.requested"):
    """Send one plain-text email."""

    to: str
    subject: str
    body: str


class UserRegistered(Event, frozen=True, kw_only=True, tag="user.registered"):
    """A new account exists; ``invited_by`` is the owner of the invite code it signed up with."""

    user_id: uuid.UUID
    invited_by: uuid.UUID | None = None


class ClubCreated(Event, frozen=True, kw_only=True, tag="club.created"):
    """A club, community or circle was created by ``owner_id``."""

    club_id: uuid.UUID
    owner_id: uuid.UUID
    kind: str


class ClubMemberJoined(Event, frozen=True, kw_only=True, tag="club.member_joined"):
    """``user_id`` became an active member of ``club_id`` (owners at creation excluded)."""

    club_id: uuid.UUID
    user_id: uuid.UUID


class FriendRequested(Event, frozen=True, kw_only=True, tag="friend.requested"):
    """``sender_id`` asked ``recipient_id`` to be friends."""

    request_id: uuid.UUID
    sender_id: uuid.UUID
    recipient_id: uuid.UUID


class FriendAccepted(Event, frozen=True, kw_only=True, tag="friend.accepted"):
    """``accepter_id`` accepted the friend request of ``requester_id``; they are now friends."""

    request_id: uuid.UUID
    requester_id: uuid.UUID
    accepter_id: uuid.UUID


class UserFollowed(Event, frozen=True, kw_only=True, tag="user.followed"):
    """``follower_id`` started following ``followee_id``."""

    follower_id: uuid.UUID
    followee_id: uuid.UUID


class VouchCreated(Event, frozen=True, kw_only=True, tag="vouch.created"):
    """``voucher_id`` vouched for ``vouchee_id``."""

    vouch_id: uuid.UUID
    voucher_id: uuid.UUID
    vouchee_id: uuid.UUID


class EventCreated(Event, frozen=True, kw_only=True, tag="event.created"):
    """``organizer_id`` created the draft event ``event_id``."""

    event_id: uuid.UUID
    organizer_id: uuid.UUID


class EventPublished(Event, frozen=True, kw_only=True, tag="event.published"):
    """``event_id`` is published; the chat feature opens its event chat on this."""

    event_id: uuid.UUID
    organizer_id: uuid.UUID


class EventCancelled(Event, frozen=True, kw_only=True, tag="event.cancelled"):
    """``event_id`` was cancelled; ``attendee_ids`` (confirmed, waitlisted, pending, maybe) are to be told."""

    event_id: uuid.UUID
    attendee_ids: list[uuid.UUID]


class RsvpConfirmed(Event, frozen=True, kw_only=True, tag="rsvp.confirmed"):
    """``user_id`` holds confirmed seats (and a ticket) at ``event_id``."""

    event_id: uuid.UUID
    rsvp_id: uuid.UUID
    user_id: uuid.UUID


class RsvpPromoted(Event, frozen=True, kw_only=True, tag="rsvp.promoted"):
    """``user_id`` moved from the waitlist to confirmed at ``event_id``."""

    event_id: uuid.UUID
    rsvp_id: uuid.UUID
    user_id: uuid.UUID


class EventCheckedIn(Event, frozen=True, kw_only=True, tag="event.checked_in"):
    """``user_id``'s ticket was scanned at ``event_id`` (badges count these)."""

    event_id: uuid.UUID
    rsvp_id: uuid.UUID
    user_id: uuid.UUID


class EventReminderDue(Event, frozen=True, kw_only=True, tag="event.reminder_due"):
    """Remind ``user_id`` that ``event_id`` starts at ``start_time`` (``kind`` 24h or 1h before)."""

    event_id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    start_time: datetime


DomainEvent = (
    EmailRequested
    | UserRegistered
    | ClubCreated
    | ClubMemberJoined
    | FriendRequested
    | FriendAccepted
    | UserFollowed
    | VouchCreated
    | EventCreated
    | EventPublished
    | EventCancelled
    | RsvpConfirmed
    | RsvpPromoted
    | EventCheckedIn
    | EventReminderDue
)

_decoder = msgspec.json.Decoder(DomainEvent)


def event_type(event: Event) -> str:
    """The tag of ``event`` (its routing key)."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def subject_for(event_type_: str) -> str:
    """The NATS subject a domain event is published on."""
    return f"{EVENTS_SUBJECT_PREFIX}.{event_type_}"


def encode_event(event: Event) -> bytes:
    """JSON bytes of ``event``, tag included."""
    return msgspec.json.encode(event)


def decode_event(data: bytes | str) -> DomainEvent:
    """The typed event behind ``data``."""
    event: DomainEvent = _decoder.decode(data)
    return event


class OutboxRow(UUIDv7Key, Base):
    """An event waiting for the relay; ``published_at`` is set once it is handed on."""

    __tablename__ = "outbox"
    __table_args__ = (
        # The relay only ever scans unpublished rows in id (= time) order.
        Index("ix_outbox_pending", "id", postgresql_where=text("published_at IS NULL")),
    )

    event_type: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    published_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(500))


async def record(session: AsyncSession, *events: Event) -> list[uuid.UUID]:
    """Append ``events`` to the outbox in the caller's transaction and wake the relay on commit."""
    rows = [OutboxRow(event_type=event_type(e), payload=msgspec.to_builtins(e)) for e in events]
    session.add_all(rows)
    await session.flush()
    # NOTIFY is transactional: listeners hear it only if this transaction commits.
    await session.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
    return [row.id for row in rows]
