"""Notification jobs: fan a new notification out to its channels, deliver one channel, mail digests."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import structlog
from sqlalchemy import select

from shared import ids
from shared.bus import NotificationCreated, user_subject
from shared.domain.chat.presence import Presence
from shared.domain.notifications.delivery import deliver, plan_deliveries, send_digest, user_zone, users_due_for_digest
from shared.domain.notifications.models import Notification
from shared.domain.notifications.schemas import Channel, NotificationNew
from shared.domain.notifications.services import view_of
from shared.domain.notifications.triggers import NotifyingEvent, notify_for_event
from shared.domain.users.models import User
from workers.context import JobContext, resources_of
from workers.jobs.base import JobSpec

log = structlog.stdlib.get_logger(__name__)


class DeliveryRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Send one notification on one channel (push or email)."""

    notification_id: uuid.UUID
    channel: Channel


async def dispatch_notification(ctx: JobContext, event: NotificationCreated) -> None:
    """Publish ``notification.new`` to the user's sockets and queue push and email (after quiet hours)."""
    res = ctx.resources
    async with res.sessions() as session:
        row = await session.get(Notification, event.notification_id)
        if row is None:
            return
        view = view_of(row)
    # An in-app-off notification is stored read; it is not shown live either.
    if row.read_at is None:
        await res.nats.publish(
            user_subject(ids.encode(ids.Prefix.USER, row.user_id)),
            msgspec.json.encode(NotificationNew(notification=view)),
        )
        await res.nats.flush(timeout=5)
    if event.collapsed:
        # A collapsed update (another chat message) only refreshes the in-app item; it is not pushed again.
        return
    async with res.sessions.begin() as session:
        planned = await plan_deliveries(session, row.id, res.clock())
    for item in planned:
        await DELIVER_NOTIFICATION.enqueue(
            res.redis,
            DeliveryRequest(notification_id=row.id, channel=item.channel),
            cause=f"{row.id}:{item.channel.value}",
            defer_until=item.not_before,
        )


async def deliver_notification(ctx: JobContext, request: DeliveryRequest) -> None:
    """Send one pending delivery; a second run finds it sent and does nothing."""
    res = ctx.resources
    async with res.sessions.begin() as session:
        await deliver(session, request.notification_id, request.channel, res.senders)


class EventNotice(msgspec.Struct, frozen=True, kw_only=True):
    """A domain event that notifies someone, and its cause (the outbox row id) for the dedupe keys."""

    event: NotifyingEvent
    cause: str


async def notify_from_event(ctx: JobContext, notice: EventNotice) -> None:
    """Store the notifications ``notice.event`` causes; a repeat of the cause stores nothing new."""
    res = ctx.resources
    async with res.sessions.begin() as session:
        await notify_for_event(session, Presence(res.redis), notice.event, notice.cause, res.clock())


DISPATCH_NOTIFICATION = JobSpec(
    name="dispatch_notification", payload_type=NotificationCreated, run=dispatch_notification
)
DELIVER_NOTIFICATION = JobSpec(name="deliver_notification", payload_type=DeliveryRequest, run=deliver_notification)
NOTIFY_FROM_EVENT = JobSpec(name="notify_from_event", payload_type=EventNotice, run=notify_from_event)


async def send_digests(ctx: dict[Any, Any]) -> int:
    """Cron job: mail each user whose local digest hour it is their pending low-priority notifications."""
    res = resources_of(ctx)
    now = res.clock()
    async with res.sessions() as session:
        due = await users_due_for_digest(session, now)
    sent = 0
    for user_id in due:
        async with res.sessions.begin() as session:
            timezone = await session.scalar(select(User.timezone).where(User.id == user_id))
            today = now.astimezone(user_zone(timezone or "UTC")).date()
            sent += bool(await send_digest(session, user_id, res.senders, today))
    return sent
