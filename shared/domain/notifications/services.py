"""The notification service: ``notify`` for every feature, and the recipient's REST verbs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Callable
from datetime import datetime, time

import msgspec
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.bus import NotificationCreated, record
from shared.clock import utcnow
from shared.domain.notifications.models import (
    Device,
    Notification,
    NotificationPreference,
    NotificationSettings,
)
from shared.domain.notifications.schemas import (
    NOTIFICATION_TYPES,
    Channel,
    ChannelState,
    DeviceRegistration,
    DeviceView,
    NotificationView,
    Payload,
    Preferences,
    PreferencesUpdate,
    QuietHours,
    ReadAllResult,
    UnreadCount,
    Unsubscribed,
    render,
)
from shared.errors import FieldError, InvalidInput, NotFound
from shared.pagination import Page, clamp_limit, decode_cursor, make_page


class NotificationCursor(msgspec.Struct, array_like=True):
    """Keyset of the notification list: newest first by id (UUIDv7, so by time)."""

    id: uuid.UUID


async def notify(
    session: AsyncSession,
    recipient_id: uuid.UUID,
    type_: str,
    payload: Payload,
    *,
    dedupe_key: str | None = None,
    collapse_key: str | None = None,
) -> uuid.UUID | None:
    """Store a notification in the caller's transaction and queue its delivery on commit.

    ``dedupe_key``: the same key for the same recipient notifies once (``None`` is returned for a repeat).
    ``collapse_key``: an unread notification with this key is updated (count + 1) instead of adding another,
    and is not pushed or mailed again.
    """
    if type_ not in NOTIFICATION_TYPES:
        raise ValueError(f"unknown notification type {type_!r}")
    if collapse_key is not None:
        grown: uuid.UUID | None = await session.scalar(
            update(Notification)
            .where(
                Notification.user_id == recipient_id,
                Notification.collapse_key == collapse_key,
                Notification.read_at.is_(None),
            )
            .values(payload=payload, count=Notification.count + 1, created_at=func.now())
            .returning(Notification.id)
        )
        if grown is not None:
            await record(
                session,
                NotificationCreated(
                    notification_id=grown, user_id=recipient_id, notification_type=type_, collapsed=True
                ),
            )
            return grown
    in_app = await channel_enabled(session, recipient_id, type_, Channel.IN_APP)
    notification_id = ids.uuid7()
    stored: uuid.UUID | None = await session.scalar(
        insert(Notification)
        .values(
            id=notification_id,
            user_id=recipient_id,
            type=type_,
            payload=payload,
            dedupe_key=dedupe_key,
            collapse_key=collapse_key,
            # With the in-app channel off the row still anchors push and email, but never shows as unread.
            read_at=None if in_app else func.now(),
        )
        .on_conflict_do_nothing(index_elements=["user_id", "dedupe_key"])
        .returning(Notification.id)
    )
    if stored is None:
        return None
    await record(session, NotificationCreated(notification_id=stored, user_id=recipient_id, notification_type=type_))
    return stored


async def channel_enabled(session: AsyncSession, user_id: uuid.UUID, type_: str, channel: Channel) -> bool:
    """Whether ``user_id`` gets ``type_`` on ``channel``: their switch if they set one, else the type's default."""
    explicit = await session.scalar(
        select(NotificationPreference.enabled).where(
            NotificationPreference.user_id == user_id,
            NotificationPreference.type == type_,
            NotificationPreference.channel == channel.value,
        )
    )
    return default_enabled(type_, channel) if explicit is None else explicit


def default_enabled(type_: str, channel: Channel) -> bool:
    """A type's channel when the user never touched the switch."""
    info = NOTIFICATION_TYPES[type_]
    return {Channel.IN_APP: True, Channel.PUSH: info.push, Channel.EMAIL: info.email}[channel]


def view_of(row: Notification) -> NotificationView:
    """The recipient's view of a stored notification."""
    title, body = render(row.type, row.payload)
    return NotificationView(
        id=ids.encode(ids.Prefix.NOTIFICATION, row.id),
        type=row.type,
        title=title,
        body=body,
        payload=row.payload,
        count=row.count,
        created_at=row.created_at,
        read_at=row.read_at,
    )


def _format_time(value: time) -> str:
    return value.strftime("%H:%M")


def _parse_time(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


class UnsubscribeTokens:
    """Signed, non-expiring links that turn one type's email off for one user."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"tribe-unsubscribe:" + secret.encode()).digest()

    def issue(self, user_id: uuid.UUID, type_: str) -> str:
        """The token for ``user_id`` and ``type_``."""
        body = base64.urlsafe_b64encode(user_id.bytes + type_.encode()).rstrip(b"=").decode()
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str) -> tuple[uuid.UUID, str]:
        """The user and type behind a token this service issued; ``InvalidInput`` otherwise."""
        body, _, signature = token.partition(".")
        if not body or not hmac.compare_digest(signature, self._sign(body)):
            raise InvalidInput(
                "the unsubscribe link is not valid",
                code="invalid_token",
                errors=[FieldError("token", "invalid")],
            )
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return uuid.UUID(bytes=raw[:16]), raw[16:].decode()

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:20]).rstrip(b"=").decode()


class NotificationService:
    """The recipient's side: list, read, preferences, devices, unsubscribe."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
        unsubscribe: UnsubscribeTokens,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._reads = reads
        self._unsubscribe = unsubscribe
        self._now = clock

    async def list(
        self, user_id: uuid.UUID, *, unread_only: bool, cursor: str | None, limit: int | None
    ) -> Page[NotificationView]:
        """The caller's notifications, newest first."""
        size = clamp_limit(limit)
        query = select(Notification).where(Notification.user_id == user_id)
        if unread_only:
            query = query.where(Notification.read_at.is_(None))
        if cursor is not None:
            query = query.where(Notification.id < decode_cursor(cursor, NotificationCursor).id)
        async with self._reads() as session:
            rows = (await session.scalars(query.order_by(Notification.id.desc()).limit(size + 1))).all()
        page = make_page(rows, size, lambda row: NotificationCursor(id=row.id))
        return Page(items=[view_of(row) for row in page.items], next_cursor=page.next_cursor)

    async def unread_count(self, user_id: uuid.UUID) -> UnreadCount:
        """How many of the caller's notifications are unread."""
        async with self._reads() as session:
            count = await session.scalar(
                select(func.count()).where(Notification.user_id == user_id, Notification.read_at.is_(None))
            )
        return UnreadCount(count=count or 0)

    async def mark_read(self, user_id: uuid.UUID, notification_id: uuid.UUID) -> NotificationView:
        """Mark one of the caller's notifications read (again is a no-op); another user's is 404."""
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(Notification)
                .where(Notification.id == notification_id, Notification.user_id == user_id)
                .with_for_update()
            )
            if row is None:
                raise NotFound("no such notification", code="notification_not_found")
            if row.read_at is None:
                row.read_at = self._now()
            return view_of(row)

    async def mark_all_read(self, user_id: uuid.UUID) -> ReadAllResult:
        """Mark every unread notification of the caller read."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(Notification)
                .where(Notification.user_id == user_id, Notification.read_at.is_(None))
                .values(read_at=self._now())
                .returning(Notification.id)
            )
            return ReadAllResult(updated=len(result.all()))

    async def preferences(self, user_id: uuid.UUID) -> Preferences:
        """Every type and channel switch and the delivery settings."""
        async with self._reads() as session:
            return await self._preferences(session, user_id)

    async def update_preferences(self, user_id: uuid.UUID, patch: PreferencesUpdate) -> Preferences:
        """Apply the switches and settings present in ``patch``."""
        if not isinstance(patch.types, msgspec.UnsetType):
            unknown = [t for t in patch.types if t not in NOTIFICATION_TYPES]
            if unknown:
                raise InvalidInput(errors=[FieldError(f"types.{t}", "unknown notification type") for t in unknown])
        async with self._sessions.begin() as session:
            if not isinstance(patch.types, msgspec.UnsetType):
                rows = [
                    {"user_id": user_id, "type": type_, "channel": channel.value, "enabled": value}
                    for type_, switches in patch.types.items()
                    for channel in Channel
                    if isinstance(value := getattr(switches, channel.value), bool)
                ]
                if rows:
                    stmt = insert(NotificationPreference).values(rows)
                    await session.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["user_id", "type", "channel"], set_={"enabled": stmt.excluded.enabled}
                        )
                    )
            settings: dict[str, object] = {}
            if not isinstance(patch.quiet_hours, msgspec.UnsetType):
                quiet = patch.quiet_hours
                if quiet is not None and quiet.start == quiet.end:
                    raise InvalidInput(errors=[FieldError("quiet_hours.end", "must differ from start")])
                settings["quiet_start"] = None if quiet is None else _parse_time(quiet.start)
                settings["quiet_end"] = None if quiet is None else _parse_time(quiet.end)
            if not isinstance(patch.daily_digest, msgspec.UnsetType):
                settings["daily_digest"] = patch.daily_digest
            if not isinstance(patch.content_free_push, msgspec.UnsetType):
                settings["content_free_push"] = patch.content_free_push
            if settings:
                stmt = insert(NotificationSettings).values(user_id=user_id, **settings)
                await session.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_=settings))
            return await self._preferences(session, user_id)

    async def unsubscribe(self, token: str) -> Unsubscribed:
        """Turn off the email channel of the type the signed link names."""
        user_id, type_ = self._unsubscribe.verify(token)
        if type_ not in NOTIFICATION_TYPES:
            raise InvalidInput("the unsubscribe link is not valid", code="invalid_token")
        async with self._sessions.begin() as session:
            stmt = insert(NotificationPreference).values(
                user_id=user_id, type=type_, channel=Channel.EMAIL.value, enabled=False
            )
            try:
                await session.execute(
                    stmt.on_conflict_do_update(index_elements=["user_id", "type", "channel"], set_={"enabled": False})
                )
            except IntegrityError as exc:
                # A validly signed link of a deleted account: the foreign key refuses it.
                raise NotFound("no such user", code="user_not_found") from exc
        return Unsubscribed(type=type_, channel=Channel.EMAIL.value, enabled=False)

    async def register_device(self, user_id: uuid.UUID, device: DeviceRegistration) -> DeviceView:
        """Register a push token; a token is one installation, so its newest owner takes it over."""
        async with self._sessions.begin() as session:
            stmt = insert(Device).values(user_id=user_id, platform=device.platform, token=device.token)
            row = (
                await session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["token"],
                        set_={"user_id": user_id, "platform": device.platform, "created_at": func.now()},
                    ).returning(Device.platform, Device.token, Device.created_at)
                )
            ).one()
        return DeviceView(platform=row.platform, token=row.token, created_at=row.created_at)

    async def remove_device(self, user_id: uuid.UUID, token: str) -> None:
        """Forget one of the caller's push tokens; someone else's or an unknown one is 404."""
        async with self._sessions.begin() as session:
            removed = await session.scalar(
                delete(Device).where(and_(Device.user_id == user_id, Device.token == token)).returning(Device.id)
            )
        if removed is None:
            raise NotFound("no such device", code="device_not_found")

    async def _preferences(self, session: AsyncSession, user_id: uuid.UUID) -> Preferences:
        explicit = {
            (row.type, row.channel): row.enabled
            for row in (
                await session.scalars(select(NotificationPreference).where(NotificationPreference.user_id == user_id))
            ).all()
        }
        types = {
            type_: ChannelState(
                **{
                    channel.value: explicit.get((type_, channel.value), default_enabled(type_, channel))
                    for channel in Channel
                }
            )
            for type_ in NOTIFICATION_TYPES
        }
        settings = await session.get(NotificationSettings, user_id)
        quiet = None
        if settings is not None and settings.quiet_start is not None and settings.quiet_end is not None:
            quiet = QuietHours(start=_format_time(settings.quiet_start), end=_format_time(settings.quiet_end))
        return Preferences(
            types=types,
            quiet_hours=quiet,
            daily_digest=settings.daily_digest if settings else False,
            content_free_push=settings.content_free_push if settings else False,
        )
