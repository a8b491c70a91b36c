"""Typed enqueue helpers: one per job, each taking its Struct and the cause that makes the job id."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import assert_never

from arq.connections import ArqRedis

from shared import ids
from shared.bus import (
    BadgeEarned,
    BoostPurchased,
    ChatMembershipChanged,
    ChatMessageDeleted,
    ChatMessageEdited,
    ChatMessagePosted,
    ChatRoomMembershipChanged,
    ChatUpdated,
    ClubCreated,
    ClubJoinApproved,
    ClubMemberJoined,
    CommentCreated,
    DomainEvent,
    EmailRequested,
    EventCancelled,
    EventCheckedIn,
    EventCreated,
    EventPublished,
    EventReminderDue,
    EventUpdated,
    FriendAccepted,
    FriendRequested,
    MediaDiscarded,
    MediaUploaded,
    NotificationCreated,
    PostCreated,
    RsvpConfirmed,
    RsvpPromoted,
    StreakActivityRecorded,
    SubscriptionChanged,
    UserFollowed,
    UserRegistered,
    VouchCreated,
    event_type,
)
from shared.clock import utcnow
from shared.domain.notifications.triggers import NotifyingEvent
from workers.jobs.discovery import enqueue_refresh
from workers.jobs.gamification import ON_ACTIVITY, ON_STREAK_ACTIVITY, ActivityOccurred
from workers.jobs.mail import SEND_EMAIL
from workers.jobs.media import PROCESS_MEDIA, PURGE_MEDIA
from workers.jobs.notifications import DISPATCH_NOTIFICATION, NOTIFY_FROM_EVENT, EventNotice
from workers.jobs.tickets import REFUND_EVENT_TICKETS


async def enqueue_send_email(redis: ArqRedis, email: EmailRequested, *, cause: str | uuid.UUID) -> bool:
    """Queue ``send_email`` once per ``cause`` (an outbox row id or another stable id); ``False`` if already queued."""
    return await SEND_EMAIL.enqueue(redis, email, cause=cause)


async def enqueue_activity(
    redis: ArqRedis, event: DomainEvent, user_id: uuid.UUID, occurred_at: datetime, cause: str | uuid.UUID
) -> bool:
    """Queue the gamification job for another feature's event (the ``*_FOR_EVENT`` tables say what it counts)."""
    activity = ActivityOccurred(
        user_id=user_id, event_type=event_type(event), occurred_at=occurred_at, cause=str(cause)
    )
    return await ON_ACTIVITY.enqueue(redis, activity, cause=cause)


async def enqueue_notice(redis: ArqRedis, event: NotifyingEvent, *, cause: str | uuid.UUID) -> bool:
    """Queue the job that notifies the people ``event`` concerns, once per ``cause``."""
    return await NOTIFY_FROM_EVENT.enqueue(redis, EventNotice(event=event, cause=str(cause)), cause=cause)


async def enqueue_for_event(redis: ArqRedis, event: DomainEvent, *, cause: str | uuid.UUID) -> bool | None:
    """Queue the job that handles ``event``; ``None`` when the event has no job and is only published."""
    # Discovery: a new friend, club or RSVP changes whose recommendations are stale (debounced refresh).
    await enqueue_signal_refresh(redis, event)
    # Exhaustive on purpose: a new event type fails type checking here until someone decides its job.
    match event:
        case EmailRequested():
            return await enqueue_send_email(redis, event, cause=cause)
        case NotificationCreated():
            return await DISPATCH_NOTIFICATION.enqueue(redis, event, cause=cause)
        case StreakActivityRecorded():
            return await ON_STREAK_ACTIVITY.enqueue(redis, event, cause=cause)
        # Other features' events reach badges, streaks and points through the *_FOR_EVENT tables.
        case ClubCreated():
            return await enqueue_activity(redis, event, event.owner_id, utcnow(), cause)
        case ClubMemberJoined():
            return await enqueue_activity(redis, event, event.user_id, utcnow(), cause)
        case PostCreated():
            return await enqueue_activity(redis, event, event.author_id, utcnow(), cause)
        case EventCheckedIn():
            return await enqueue_activity(redis, event, event.user_id, utcnow(), cause)
        case RsvpConfirmed() | RsvpPromoted():
            noticed = await enqueue_notice(redis, event, cause=cause)
            return await enqueue_activity(redis, event, event.user_id, utcnow(), cause) or noticed
        case ChatMessagePosted():
            # Offline members are told here; the gateway already delivered it to everyone online.
            noticed = await enqueue_notice(redis, event, cause=cause)
            sender = ids.decode(ids.Prefix.USER, event.message.sender_id)
            return await enqueue_activity(redis, event, sender, event.message.sent_at, cause) or noticed
        case EventCancelled():
            # Attendees are told, and paid tickets refunded by their own job (both once per outbox row).
            noticed = await enqueue_notice(redis, event, cause=cause)
            return await REFUND_EVENT_TICKETS.enqueue(redis, event, cause=cause) or noticed
        case EventReminderDue() | EventCancelled() | FriendRequested() | ClubJoinApproved():
            return await enqueue_notice(redis, event, cause=cause)
        case UserRegistered() | BadgeEarned():
            # badge.earned: the awarding job notifies in the same transaction as the award.
            return None
        case FriendAccepted() | UserFollowed() | VouchCreated():
            return None
        case MediaUploaded():
            return await PROCESS_MEDIA.enqueue(redis, event, cause=cause)
        case MediaDiscarded():
            return await PURGE_MEDIA.enqueue(redis, event, cause=cause)
        case CommentCreated():
            return None
        case SubscriptionChanged():
            return None
        case ChatMessageEdited() | ChatMessageDeleted() | ChatMembershipChanged() | ChatUpdated():
            # Only their live subject matters; gateways deliver them.
            return None
        case EventCreated() | EventPublished():
            return None
        case EventUpdated():
            return await enqueue_notice(redis, event, cause=cause)
        case ChatRoomMembershipChanged():
            # Only its live subject matters; gateways (un)subscribe the user's sockets.
            return None
        case BoostPurchased():
            # Rankings read the boosts table; nothing is queued.
            return None
        case _:
            assert_never(event)


async def enqueue_signal_refresh(redis: ArqRedis, event: DomainEvent) -> None:
    """Queue a debounced recommendation refresh for the users whose signals ``event`` changed."""
    match event:
        case FriendAccepted():
            await enqueue_refresh(redis, event.requester_id)
            await enqueue_refresh(redis, event.accepter_id)
        case ClubMemberJoined() | RsvpConfirmed():
            await enqueue_refresh(redis, event.user_id)
        # Activity signals (discovery2): check-ins, posts and comments change tag affinity and engagement.
        # Chat messages and reactions are left to the hourly sweep: too frequent to be worth a job each.
        case EventCheckedIn():
            await enqueue_refresh(redis, event.user_id)
        case PostCreated():
            await enqueue_refresh(redis, event.author_id)
        case CommentCreated():
            await enqueue_refresh(redis, event.author_id)
            if event.post_author_id != event.author_id:
                await enqueue_refresh(redis, event.post_author_id)
