"""Which domain events notify whom: the worker calls :func:`notify_for_event` once per outbox row.

Every notification made here carries ``dedupe_key = "<type>:<cause>"`` (the cause is the outbox
row id), so relaying the same row twice notifies once.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared import ids
from shared.bus import (
    ChatMessagePosted,
    ClubJoinApproved,
    EventCancelled,
    EventReminderDue,
    EventUpdated,
    FriendRequested,
    RsvpConfirmed,
    RsvpPromoted,
)
from shared.domain.chat.models import ChatParticipant, ModerationStatus
from shared.domain.chat.presence import Presence
from shared.domain.clubs.models import Club
from shared.domain.events.models import Event
from shared.domain.notifications.models import Notification
from shared.domain.notifications.schemas import Payload
from shared.domain.notifications.services import notify
from shared.domain.users.models import User

NotifyingEvent = (
    RsvpConfirmed
    | RsvpPromoted
    | EventReminderDue
    | EventCancelled
    | FriendRequested
    | ClubJoinApproved
    | ChatMessagePosted
    | EventUpdated
)
"""The domain events that notify someone (``badge.earned`` is notified by the awarding job itself)."""

CHAT_PREVIEW_CHARS = 140


def chat_collapse_key(chat_id: str) -> str:
    """One unread ``chat_message`` notification per chat (``chat_id`` is the public id)."""
    return f"chat:{chat_id}"


async def notify_for_event(
    session: AsyncSession, presence: Presence, event: NotifyingEvent, cause: str, now: datetime
) -> int:
    """Notify the people ``event`` concerns; returns how many notifications were stored or grown."""
    match event:
        case RsvpConfirmed() | RsvpPromoted():
            type_ = _rsvp_type(event)
            if type_ is None:
                return 0
            payload = await _event_payload(session, event.event_id)
            if payload is None:
                return 0
            payload["rsvp_id"] = ids.encode(ids.Prefix.RSVP, event.rsvp_id)
            return await _notify(session, [event.user_id], type_, payload, cause)
        case EventReminderDue():
            payload = await _event_payload(session, event.event_id)
            if payload is None:
                return 0
            payload["starts_at"] = event.start_time.isoformat()
            payload["reminder"] = event.kind
            return await _notify(session, [event.user_id], "event_reminder", payload, cause)
        case EventCancelled():
            payload = await _event_payload(session, event.event_id)
            if payload is None:
                return 0
            return await _notify(session, event.attendee_ids, "event_cancelled", payload, cause)
        case EventUpdated():
            # A cancellation is told once, as event_cancelled; every other change as event_updated.
            if event.status == "cancelled" or not event.attendee_ids:
                return 0
            payload = await _event_payload(session, event.event_id)
            if payload is None:
                return 0
            payload["changes"] = ",".join(event.changes)
            payload["sequence"] = event.sequence
            return await _notify(session, event.attendee_ids, "event_updated", payload, cause)
        case FriendRequested():
            sender_name = await session.scalar(select(User.display_name).where(User.id == event.sender_id))
            friend_payload: Payload = {
                "request_id": ids.encode(ids.Prefix.FRIEND_REQUEST, event.request_id),
                "sender_id": ids.encode(ids.Prefix.USER, event.sender_id),
                "sender_name": sender_name or "Someone",
            }
            return await _notify(session, [event.recipient_id], "friend_request", friend_payload, cause)
        case ClubJoinApproved():
            club_name = await session.scalar(select(Club.name).where(Club.id == event.club_id))
            if club_name is None:
                return 0
            club_payload: Payload = {"club_id": ids.encode(ids.Prefix.CLUB, event.club_id), "club_name": club_name}
            return await _notify(session, [event.user_id], "club_join_approved", club_payload, cause)
        case ChatMessagePosted():
            return await _notify_offline_members(session, presence, event, cause, now)


def _rsvp_type(event: RsvpConfirmed | RsvpPromoted) -> str | None:
    """The one notification an RSVP change makes (a promotion also confirms: it is told once, as a promotion)."""
    if isinstance(event, RsvpPromoted):
        return "waitlist_promoted"
    if event.reason == "promoted":
        return None
    return "rsvp_approved" if event.reason == "approved" else "rsvp_confirmed"


async def _event_payload(session: AsyncSession, event_id: uuid.UUID) -> Payload | None:
    row = (await session.execute(select(Event.title, Event.start_time).where(Event.id == event_id))).first()
    if row is None:
        return None
    return {
        "event_id": ids.encode(ids.Prefix.EVENT, event_id),
        "event_title": row.title,
        "starts_at": row.start_time.isoformat(),
    }


async def _notify(session: AsyncSession, recipients: list[uuid.UUID], type_: str, payload: Payload, cause: str) -> int:
    stored = 0
    for recipient in dict.fromkeys(recipients):
        stored += await notify(session, recipient, type_, payload, dedupe_key=f"{type_}:{cause}") is not None
    return stored


async def _notify_offline_members(
    session: AsyncSession, presence: Presence, event: ChatMessagePosted, cause: str, now: datetime
) -> int:
    """A ``chat_message`` for each member without an open socket whose chat is not muted, collapsed per chat."""
    message = event.message
    if message.deleted or message.content is None or message.moderation_status != ModerationStatus.VISIBLE:
        return 0
    chat_id = ids.decode(ids.Prefix.CHAT, message.chat_id)
    sender_id = ids.decode(ids.Prefix.USER, message.sender_id)
    members = list(
        await session.scalars(
            select(ChatParticipant.user_id).where(
                ChatParticipant.chat_id == chat_id,
                ChatParticipant.user_id != sender_id,
                or_(ChatParticipant.muted_until.is_(None), ChatParticipant.muted_until <= now),
            )
        )
    )
    online = await presence.online_of(members)
    offline = [member for member in members if member not in online]
    if not offline:
        return 0
    collapse_key = chat_collapse_key(message.chat_id)
    dedupe_key = f"chat_message:{message.id}"
    # A collapsed row carries its latest message: seeing this one there means this row was relayed before.
    already = set(
        await session.scalars(
            select(Notification.user_id).where(
                Notification.user_id.in_(offline),
                or_(
                    Notification.dedupe_key == dedupe_key,
                    (Notification.collapse_key == collapse_key)
                    & (Notification.payload["message_id"].astext == message.id),
                ),
            )
        )
    )
    sender_name = await session.scalar(select(User.display_name).where(User.id == sender_id))
    payload: Payload = {
        "chat_id": message.chat_id,
        "message_id": message.id,
        "sender_id": message.sender_id,
        "sender_name": sender_name or "Someone",
        "preview": message.content.text[:CHAT_PREVIEW_CHARS],
    }
    stored = 0
    for member in offline:
        if member in already:
            continue
        created = await notify(
            session, member, "chat_message", payload, dedupe_key=dedupe_key, collapse_key=collapse_key
        )
        stored += created is not None
    return stored
