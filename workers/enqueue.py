"""Typed enqueue helpers: one per job, each taking its Struct and the cause that makes the job id."""

from __future__ import annotations

import uuid
from typing import assert_never

from arq.connections import ArqRedis

from shared.bus import (
    ChatMembershipChanged,
    ChatMessageDeleted,
    ChatMessageEdited,
    ChatMessagePosted,
    ClubCreated,
    ClubMemberJoined,
    CommentCreated,
    DomainEvent,
    EmailRequested,
    FriendAccepted,
    FriendRequested,
    MediaDiscarded,
    MediaUploaded,
    PostCreated,
    SubscriptionChanged,
    UserFollowed,
    UserRegistered,
    VouchCreated,
)
from workers.jobs.mail import SEND_EMAIL
from workers.jobs.media import PROCESS_MEDIA, PURGE_MEDIA


async def enqueue_send_email(redis: ArqRedis, email: EmailRequested, *, cause: str | uuid.UUID) -> bool:
    """Queue ``send_email`` once per ``cause`` (an outbox row id or another stable id); ``False`` if already queued."""
    return await SEND_EMAIL.enqueue(redis, email, cause=cause)


async def enqueue_for_event(redis: ArqRedis, event: DomainEvent, *, cause: str | uuid.UUID) -> bool | None:
    """Queue the job that handles ``event``; ``None`` when the event has no job and is only published."""
    # Exhaustive on purpose: a new event type fails type checking here until someone decides its job.
    match event:
        case EmailRequested():
            return await enqueue_send_email(redis, event, cause=cause)
        case UserRegistered() | ClubCreated() | ClubMemberJoined():
            return None
        case FriendRequested() | FriendAccepted() | UserFollowed() | VouchCreated():
            return None
        case MediaUploaded():
            return await PROCESS_MEDIA.enqueue(redis, event, cause=cause)
        case MediaDiscarded():
            return await PURGE_MEDIA.enqueue(redis, event, cause=cause)
        case PostCreated() | CommentCreated():
            return None
        case SubscriptionChanged():
            return None
        case ChatMessagePosted() | ChatMessageEdited() | ChatMessageDeleted() | ChatMembershipChanged():
            # Chat events only need their live subject; gateways deliver them.
            return None
        case _:
            assert_never(event)
