"""Delivering notifications on push and email: planning (preferences, quiet hours, digest) and sending.

The worker calls these: :func:`plan_deliveries` when a notification is created, then
:func:`deliver` once per planned channel (possibly deferred until quiet hours end).
Each delivery is a row of the log, locked while it is sent, so running a delivery
twice sends once.
"""

from __future__ import annotations

import html
import uuid
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

import httpx
import msgspec
import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared import ids
from shared.domain.notifications.models import Device, Notification, NotificationDelivery, NotificationSettings
from shared.domain.notifications.schemas import NOTIFICATION_TYPES, Channel, Priority, render
from shared.domain.notifications.services import UnsubscribeTokens, channel_enabled
from shared.domain.users.models import User
from shared.errors import InvalidInput, Unavailable
from shared.mail import Mailer

log = structlog.stdlib.get_logger(__name__)

DIGEST_LOCAL_HOUR = 8
"""The local hour at which a user's daily digest goes out."""


def user_zone(name: str) -> zoneinfo.ZoneInfo:
    """The user's time zone; an unknown name (an old row) falls back to UTC."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def local_datetime(day: date, at: time, zone: zoneinfo.ZoneInfo) -> datetime:
    """``day`` at wall-clock ``at`` in ``zone``, as UTC; a time skipped by DST moves forward by the gap."""
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=zone)
    # Round-trip through UTC: a non-existent wall time comes back shifted, which is what a person expects.
    return aware.astimezone(zoneinfo.ZoneInfo("UTC"))


def quiet_hours_end(now: datetime, zone: zoneinfo.ZoneInfo, start: time, end: time) -> datetime | None:
    """When the quiet hours that contain ``now`` end (UTC), or ``None`` outside them."""
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    today = local.date()
    if start < end:
        inside = start <= clock < end
        end_day = today
    else:  # spans midnight, e.g. 22:00-07:00
        inside = clock >= start or clock < end
        end_day = today + timedelta(days=1) if clock >= start else today
    return local_datetime(end_day, end, zone) if inside else None


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """A channel to send on, and not before when."""

    channel: Channel
    not_before: datetime | None


async def plan_deliveries(session: AsyncSession, notification_id: uuid.UUID, now: datetime) -> list[PlannedDelivery]:
    """Log each channel's fate for a new notification; the push and email ones to send are returned.

    Idempotent: a channel already in the log keeps its row and is planned again only while still pending.
    """
    row = await session.get(Notification, notification_id)
    if row is None:
        return []
    user = await session.get(User, row.user_id)
    if user is None:
        return []
    settings = await session.get(NotificationSettings, row.user_id)
    info = NOTIFICATION_TYPES[row.type]
    in_app = await channel_enabled(session, row.user_id, row.type, Channel.IN_APP)
    await _log(session, row, Channel.IN_APP, "sent" if in_app else "skipped", None if in_app else "turned off")
    planned: list[PlannedDelivery] = []
    for channel in (Channel.PUSH, Channel.EMAIL):
        if not await channel_enabled(session, row.user_id, row.type, channel):
            await _log(session, row, channel, "skipped", "turned off")
            continue
        if channel is Channel.EMAIL and info.priority is Priority.LOW and settings and settings.daily_digest:
            await _log(session, row, channel, "digest_pending", None)
            continue
        not_before = None
        if settings is not None and settings.quiet_start is not None and settings.quiet_end is not None:
            not_before = quiet_hours_end(now, user_zone(user.timezone), settings.quiet_start, settings.quiet_end)
        status = await _log(session, row, channel, "pending", None, scheduled_for=not_before)
        if status == "pending":
            planned.append(PlannedDelivery(channel, not_before))
    return planned


async def _log(
    session: AsyncSession,
    row: Notification,
    channel: Channel,
    status: str,
    error: str | None,
    *,
    scheduled_for: datetime | None = None,
) -> str:
    """Insert the channel's log row unless one exists; returns the row's status."""
    await session.execute(
        insert(NotificationDelivery)
        .values(
            notification_id=row.id,
            user_id=row.user_id,
            channel=channel.value,
            status=status,
            error=error,
            scheduled_for=scheduled_for,
        )
        .on_conflict_do_nothing(index_elements=["notification_id", "channel"])
    )
    current = await session.scalar(
        select(NotificationDelivery.status).where(
            NotificationDelivery.notification_id == row.id, NotificationDelivery.channel == channel.value
        )
    )
    return current or status


class PushMessage(msgspec.Struct, omit_defaults=True):
    """One message of the Expo push API."""

    to: str
    title: str | None = None
    body: str | None = None
    data: dict[str, str] = msgspec.field(default_factory=dict)
    sound: str | None = "default"
    collapseId: str | None = None  # noqa: N815 - Expo's field name


class PushTicketDetails(msgspec.Struct):
    """Why Expo refused one message."""

    error: str | None = None


class PushTicket(msgspec.Struct):
    """Expo's answer for one message."""

    status: Literal["ok", "error"]
    id: str | None = None
    message: str | None = None
    details: PushTicketDetails | None = None


class PushResponse(msgspec.Struct):
    """The body of an Expo push response."""

    data: list[PushTicket]


class ExpoPushProvider:
    """Sends pushes through the Expo push HTTP API (or anything speaking it, like the local sink)."""

    def __init__(self, url: str, *, access_token: str | None = None, timeout: float = 10.0) -> None:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        self._url = url
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout)

    async def send(self, messages: Sequence[PushMessage]) -> list[PushTicket]:
        """One ticket per message, in order; ``Unavailable`` when the provider cannot be reached or fails."""
        try:
            response = await self._client.post(self._url, content=msgspec.json.encode(list(messages)))
        except httpx.HTTPError as exc:
            raise Unavailable(f"push provider unreachable: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise Unavailable(f"push provider answered {response.status_code}")
        if response.status_code >= 400:
            raise InvalidInput(f"push provider refused the request ({response.status_code})", code="push_rejected")
        tickets = msgspec.json.decode(response.content, type=PushResponse).data
        if len(tickets) != len(messages):
            raise Unavailable("push provider answered with a different number of tickets")
        return tickets

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()


@dataclass(frozen=True, slots=True)
class Senders:
    """What :func:`deliver` sends with."""

    mailer: Mailer
    push: ExpoPushProvider | None
    unsubscribe: UnsubscribeTokens
    public_api_url: str


async def deliver(session: AsyncSession, notification_id: uuid.UUID, channel: Channel, senders: Senders) -> str:
    """Send one pending delivery, holding its log row locked; returns the final status (a repeat sends nothing)."""
    delivery = await session.scalar(
        select(NotificationDelivery)
        .where(NotificationDelivery.notification_id == notification_id, NotificationDelivery.channel == channel.value)
        .with_for_update()
    )
    if delivery is None or delivery.status != "pending":
        return "missing" if delivery is None else delivery.status
    row = await session.get(Notification, notification_id)
    user = await session.get(User, delivery.user_id)
    if row is None or user is None:
        return "missing"
    delivery.attempts += 1
    try:
        if channel is Channel.PUSH:
            status, error = await _send_push(session, row, senders)
        else:
            status, error = await _send_email(row, user, senders)
    except InvalidInput as exc:
        status, error = "failed", exc.detail
    delivery.status = status
    delivery.error = error[:500] if error else None
    await session.execute(
        update(NotificationDelivery).where(NotificationDelivery.id == delivery.id).values(updated_at=func.now())
    )
    log.info("notification.delivered", notification_id=str(notification_id), channel=channel.value, status=status)
    return status


async def _send_push(session: AsyncSession, row: Notification, senders: Senders) -> tuple[str, str | None]:
    if senders.push is None:
        return "skipped", "no push provider configured"
    devices = (await session.scalars(select(Device).where(Device.user_id == row.user_id).order_by(Device.id))).all()
    if not devices:
        return "skipped", "no registered device"
    settings = await session.get(NotificationSettings, row.user_id)
    title, body = render(row.type, row.payload)
    data = {"notification_id": ids.encode(ids.Prefix.NOTIFICATION, row.id), "type": row.type}
    content_free = settings is not None and settings.content_free_push
    messages = [
        PushMessage(
            to=device.token,
            # Content-free: the device fetches the notification by id, nothing readable crosses the provider.
            title=None if content_free else title,
            body=None if content_free else body,
            data=data,
            collapseId=row.collapse_key,
        )
        for device in devices
    ]
    tickets = await senders.push.send(messages)
    gone = [
        device.token
        for device, ticket in zip(devices, tickets, strict=True)
        if ticket.status == "error" and ticket.details is not None and ticket.details.error == "DeviceNotRegistered"
    ]
    if gone:
        await session.execute(delete(Device).where(Device.token.in_(gone)))
        log.info("push.tokens_removed", count=len(gone))
    errors = [t.message or (t.details.error if t.details else None) or "error" for t in tickets if t.status == "error"]
    if len(errors) == len(tickets):
        return "failed", "; ".join(errors)
    return "sent", "; ".join(errors) or None


def unsubscribe_url(senders: Senders, user_id: uuid.UUID, type_: str) -> str:
    """The link in a mail that turns this type's email off."""
    token = senders.unsubscribe.issue(user_id, type_)
    return f"{senders.public_api_url.rstrip('/')}/v1/notifications/unsubscribe?token={token}"


async def _send_email(row: Notification, user: User, senders: Senders) -> tuple[str, str | None]:
    title, body = render(row.type, row.payload)
    link = unsubscribe_url(senders, user.id, row.type)
    text = f"Hi {user.display_name},\n\n{title}\n\n{body}\n\n--\nStop these emails: {link}\n"
    page = (
        f"<html><body><p>Hi {html.escape(user.display_name)},</p>"
        f"<h2>{html.escape(title)}</h2><p>{html.escape(body)}</p>"
        f'<hr><p><a href="{html.escape(link)}">Stop these emails</a></p></body></html>'
    )
    await senders.mailer.send_multipart(
        user.email,
        title,
        text,
        page,
        message_id=f"ntf.{row.id}",
        headers={"List-Unsubscribe": f"<{link}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )
    return "sent", None


async def send_digest(session: AsyncSession, user_id: uuid.UUID, senders: Senders, today: date) -> int:
    """Mail one digest of ``user_id``'s pending low-priority notifications; returns how many it held."""
    pending = (
        await session.execute(
            select(NotificationDelivery, Notification)
            .join(Notification, Notification.id == NotificationDelivery.notification_id)
            .where(
                NotificationDelivery.user_id == user_id,
                NotificationDelivery.channel == Channel.EMAIL.value,
                NotificationDelivery.status == "digest_pending",
            )
            .order_by(Notification.id)
            .with_for_update(of=NotificationDelivery, skip_locked=True)
        )
    ).all()
    user = await session.get(User, user_id)
    if not pending or user is None:
        return 0
    lines = [" - ".join(render(n.type, n.payload)) for _, n in pending]
    subject = f"Your Tribe digest for {today.isoformat()}"
    text = f"Hi {user.display_name},\n\n" + "\n".join(f"* {line}" for line in lines) + "\n"
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    page = f"<html><body><p>Hi {html.escape(user.display_name)},</p><ul>{items}</ul></body></html>"
    await senders.mailer.send_multipart(
        user.email, subject, text, page, message_id=f"digest.{user_id}.{today.isoformat()}"
    )
    await session.execute(
        update(NotificationDelivery)
        .where(NotificationDelivery.id.in_([d.id for d, _ in pending]))
        .values(status="sent", attempts=NotificationDelivery.attempts + 1)
    )
    return len(pending)


async def users_due_for_digest(session: AsyncSession, now: datetime) -> list[uuid.UUID]:
    """Users with pending digest items whose local hour is the digest hour now."""
    rows = (
        await session.execute(
            select(User.id, User.timezone)
            .where(
                User.id.in_(select(NotificationDelivery.user_id).where(NotificationDelivery.status == "digest_pending"))
            )
            .order_by(User.id)
        )
    ).all()
    return [row.id for row in rows if now.astimezone(user_zone(row.timezone)).hour == DIGEST_LOCAL_HOUR]
