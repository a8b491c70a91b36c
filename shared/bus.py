"""Domain events: typed wire payloads, the transactional outbox, and NATS subjects.

A service appends events with :func:`record` inside its transaction; the worker's
outbox relay later turns each row into an arq job (job id = row id) and a NATS
message on :func:`publish_subject`. Nothing is published for a transaction that rolled back.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Index, String, func, insert, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, UUIDv7Key
from shared.domain.chat.schemas import Message
from shared.ids import uuid7

# Chat events are published by the service that commits them, which then stamps live_published_at;
# the relay queues their jobs once stamped, and publishes them itself only for a row still unstamped
# this long after its commit (the service crashed or NATS was down).
SELF_PUBLISH_GRACE_SECONDS = 5
EVENTS_SUBJECT_PREFIX = "events"
CHAT_SUBJECT_PREFIX = "chat"
USER_SUBJECT_PREFIX = "user"
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


class ClubJoinApproved(Event, frozen=True, kw_only=True, tag="club.join_approved"):
    """A moderator approved ``user_id``'s request to join ``club_id`` (``club.member_joined`` follows too)."""

    club_id: uuid.UUID
    user_id: uuid.UUID
    approved_by: uuid.UUID


class NotificationCreated(Event, frozen=True, kw_only=True, tag="notification.created"):
    """A notification row was stored (or a collapsed one grew); its channels are to be delivered."""

    notification_id: uuid.UUID
    user_id: uuid.UUID
    notification_type: str
    collapsed: bool = False


class StreakActivityRecorded(Event, frozen=True, kw_only=True, tag="streak.activity_recorded"):
    """A streak counted a day of activity (repeats on the same local day are not recorded)."""

    user_id: uuid.UUID
    kind: str
    current: int
    longest: int


class BadgeEarned(Event, frozen=True, kw_only=True, tag="badge.earned"):
    """A user earned a badge (awarded once)."""

    user_id: uuid.UUID
    badge_code: str


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


class MediaUploaded(Event, frozen=True, kw_only=True, tag="media.uploaded"):
    """A media item's bytes were verified; its variants are to be made."""

    media_id: uuid.UUID


class MediaDiscarded(Event, frozen=True, kw_only=True, tag="media.discarded"):
    """A media item was deleted or rejected; its objects are to be removed."""

    media_id: uuid.UUID
    object_keys: list[str]


class PostCreated(Event, frozen=True, kw_only=True, tag="post.created"):
    """``author_id`` posted; ``club_id`` is ``None`` for a post on the author's profile."""

    post_id: uuid.UUID
    author_id: uuid.UUID
    club_id: uuid.UUID | None


class CommentCreated(Event, frozen=True, kw_only=True, tag="comment.created"):
    """``author_id`` commented on ``post_id`` (a reply when ``parent_id`` is set)."""

    comment_id: uuid.UUID
    post_id: uuid.UUID
    author_id: uuid.UUID
    post_author_id: uuid.UUID
    parent_id: uuid.UUID | None
    club_id: uuid.UUID | None


class SubscriptionChanged(Event, frozen=True, kw_only=True, tag="subscription.changed"):
    """A subscription was created or changed status or cancellation; ``premium_tier`` is the user's tier now."""

    subscription_id: uuid.UUID
    user_id: uuid.UUID
    status: str
    cancel_at_period_end: bool
    premium_tier: str | None


class ChatMessagePosted(Event, frozen=True, kw_only=True, tag="chat.message.new"):
    """A message was stored in a chat."""

    message: Message


class ChatMessageEdited(Event, frozen=True, kw_only=True, tag="chat.message.update"):
    """A message's content changed."""

    message: Message


class ChatMessageDeleted(Event, frozen=True, kw_only=True, tag="chat.message.delete"):
    """A message became a tombstone (``message.content`` is ``None``)."""

    message: Message


class ChatMembershipChanged(Event, frozen=True, kw_only=True, tag="chat.membership"):
    """A user joined (``member``) or left a chat; gateways (un)subscribe that user's sockets."""

    chat_id: str
    user_id: str
    member: bool


class ChatUpdated(Event, frozen=True, kw_only=True, tag="chat.update"):
    """A chat's settings changed (title, read-only); ``title`` and ``read_only`` are the values now."""

    chat_id: str
    title: str | None
    read_only: bool
    updated_by: str


class ChatTyping(Event, frozen=True, kw_only=True, tag="chat.typing"):
    """A participant started or stopped typing; live only, never stored."""

    chat_id: str
    user_id: str
    typing: bool
    expires_in_ms: int


class ChatRead(Event, frozen=True, kw_only=True, tag="chat.read"):
    """A participant's read position moved forward; live only (the position itself is stored)."""

    chat_id: str
    user_id: str
    message_id: str | None
    seq: int


class ChatPresence(Event, frozen=True, kw_only=True, tag="chat.presence"):
    """A chat member came online (first socket) or went offline (last socket closed); live only."""

    chat_id: str
    user_id: str
    status: str
    # Orders one user's presence changes across gateways (a later change has a larger stamp); 0 = unordered.
    stamp: int = 0


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
    """``user_id`` holds confirmed seats (and a ticket) at ``event_id``; ``reason`` says how (e.g. ``approved``)."""

    event_id: uuid.UUID
    rsvp_id: uuid.UUID
    user_id: uuid.UUID
    reason: str | None = None


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


class EventUpdated(Event, frozen=True, kw_only=True, tag="event.updated"):
    """``event_id``'s time, place or status changed (``changes``); ``attendee_ids`` held confirmed seats then."""

    event_id: uuid.UUID
    changes: list[str]
    status: str
    sequence: int
    attendee_ids: list[uuid.UUID]


class ChatRoomMembershipChanged(Event, frozen=True, kw_only=True, tag="chat.room_membership"):
    """A user joined or left an event or club room because their RSVP or club membership changed.

    Written by the events and clubs services inside their own transactions, so the relay publishes it
    (on the user's live subject, at once); gateways treat it like ``chat.membership``.
    """

    chat_id: str
    user_id: str
    member: bool


class ChatModerated(Event, frozen=True, kw_only=True, tag="chat.moderation"):
    """A moderator approved or removed a message of the chat; live only (the message row is the record)."""

    chat_id: str
    message_id: str
    seq: int
    action: str
    moderator_id: str


class BoostPurchased(Event, frozen=True, kw_only=True, tag="boost.purchased"):
    """A boost was paid for; ``event_id`` or ``target_user_id`` is what it lifts."""

    boost_id: uuid.UUID
    buyer_id: uuid.UUID
    event_id: uuid.UUID | None
    target_user_id: uuid.UUID | None
    placement: str
    starts_at: datetime
    ends_at: datetime
    amount_cents: int


DomainEvent = (
    EmailRequested
    | UserRegistered
    | ClubCreated
    | ClubMemberJoined
    | ClubJoinApproved
    | FriendRequested
    | FriendAccepted
    | UserFollowed
    | VouchCreated
    | MediaUploaded
    | MediaDiscarded
    | PostCreated
    | CommentCreated
    | SubscriptionChanged
    | ChatMessagePosted
    | ChatMessageEdited
    | ChatMessageDeleted
    | ChatMembershipChanged
    | ChatUpdated
    | EventCreated
    | EventPublished
    | EventCancelled
    | RsvpConfirmed
    | RsvpPromoted
    | EventCheckedIn
    | EventReminderDue
    | NotificationCreated
    | StreakActivityRecorded
    | BadgeEarned
    | EventUpdated
    | ChatRoomMembershipChanged
    | BoostPurchased
)
SELF_PUBLISHED_TYPES = frozenset(
    {"chat.message.new", "chat.message.update", "chat.message.delete", "chat.membership", "chat.update"}
)
# What gateways receive on ``chat.<chat_id>`` and ``user.<user_id>``.
ChatLiveEvent = (
    ChatMessagePosted
    | ChatMessageEdited
    | ChatMessageDeleted
    | ChatMembershipChanged
    | ChatUpdated
    | ChatTyping
    | ChatRead
    | ChatPresence
    | ChatModerated
)

_decoder = msgspec.json.Decoder(DomainEvent)
_live_decoder = msgspec.json.Decoder(ChatLiveEvent)


def event_type(event: Event) -> str:
    """The tag of ``event`` (its routing key)."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def subject_for(event_type_: str) -> str:
    """The NATS subject a domain event is published on."""
    return f"{EVENTS_SUBJECT_PREFIX}.{event_type_}"


def chat_subject(chat_id: str) -> str:
    """The live subject of one chat (``chat_id`` is the public id)."""
    return f"{CHAT_SUBJECT_PREFIX}.{chat_id}"


def user_subject(user_id: str) -> str:
    """The live subject of one user's own events (``user_id`` is the public id)."""
    return f"{USER_SUBJECT_PREFIX}.{user_id}"


def live_subject(event: Event) -> str | None:
    """Where gateways listen for ``event``; ``None`` for events that only go to :func:`subject_for`."""
    match event:
        case ChatMessagePosted() | ChatMessageEdited() | ChatMessageDeleted():
            return chat_subject(event.message.chat_id)
        case ChatTyping() | ChatRead() | ChatPresence() | ChatUpdated():
            return chat_subject(event.chat_id)
        case ChatMembershipChanged():
            return user_subject(event.user_id)
        case ChatModerated():
            return chat_subject(event.chat_id)
        case ChatRoomMembershipChanged():
            return user_subject(event.user_id)
    return None


def publish_subject(event: Event) -> str:
    """The subject the outbox relay publishes ``event`` on: its live subject if it has one."""
    return live_subject(event) or subject_for(event_type(event))


def decode_live_event(data: bytes | str) -> ChatLiveEvent:
    """The typed live event behind ``data``."""
    event: ChatLiveEvent = _live_decoder.decode(data)
    return event


def encode_event(event: Event) -> bytes:
    """JSON bytes of ``event``, tag included."""
    return msgspec.json.encode(event)


def decode_event(data: bytes | str) -> DomainEvent:
    """The typed event behind ``data``."""
    event: DomainEvent = _decoder.decode(data)
    return event


class OutboxRow(UUIDv7Key, Base):
    """An event waiting for the relay; ``published_at`` is set once it is handed on.

    ``live_published_at`` is set by a writer that published the row to NATS itself (chat): the relay
    then still queues the row's jobs but does not publish it again.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        # The relay only ever scans unpublished rows in id (= time) order.
        Index("ix_outbox_pending", "id", postgresql_where=text("published_at IS NULL")),
    )

    event_type: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    published_at: Mapped[datetime | None]
    live_published_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(500))


async def record(session: AsyncSession, *events: Event, wake_relay: bool = True) -> list[uuid.UUID]:
    """Append ``events`` to the outbox in the caller's transaction and wake the relay on commit.

    ``wake_relay=False`` is for rows the caller publishes itself right after the commit (types in
    :data:`SELF_PUBLISHED_TYPES`): the caller stamps ``live_published_at`` and wakes the relay then
    (it only queues their jobs); rows never stamped are published by the relay after the grace.
    """
    rows = [{"id": uuid7(), "event_type": event_type(e), "payload": msgspec.to_builtins(e)} for e in events]
    # A Core insert: cheaper than ORM objects on the hot path of every chat message.
    await session.execute(insert(OutboxRow), rows)
    if wake_relay:
        # NOTIFY is transactional: listeners hear it only if this transaction commits.
        await session.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
    return [row["id"] for row in rows]


class UserPresence(Event, frozen=True, kw_only=True, tag="user.presence"):
    """A friend of the subject's user came online or went offline; live only, on ``user.<friend_id>``."""

    user_id: str
    status: str
    stamp: int = 0
