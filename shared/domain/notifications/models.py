"""Notifications, their per-channel delivery log, preferences, settings and push devices."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, PrimaryKeyConstraint, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, UUIDv7Key


class Notification(UUIDv7Key, Base):
    """One in-app notification; push and email deliveries hang off it."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_id_id", "user_id", "id"),
        Index("ix_notifications_unread", "user_id", "id", postgresql_where=text("read_at IS NULL")),
        # The same cause (a badge, a day's reminder) never notifies a user twice.
        Index("uq_notifications_user_id_dedupe_key", "user_id", "dedupe_key", unique=True),
        Index(
            "ix_notifications_collapse",
            "user_id",
            "collapse_key",
            postgresql_where=text("read_at IS NULL AND collapse_key IS NOT NULL"),
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    collapse_key: Mapped[str | None] = mapped_column(String(200))
    # How many events a collapsed notification stands for (chat messages of one chat).
    count: Mapped[int] = mapped_column(server_default="1")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    read_at: Mapped[datetime | None]


class NotificationDelivery(UUIDv7Key, Base):
    """The delivery log: one row per notification and channel, with its outcome."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        CheckConstraint("channel IN ('in_app', 'push', 'email')", name="channel"),
        CheckConstraint(
            "status IN ('pending', 'sent', 'failed', 'skipped', 'digest_pending')",
            name="status",
        ),
        Index("uq_notification_deliveries_notification_id_channel", "notification_id", "channel", unique=True),
        Index(
            "ix_notification_deliveries_digest",
            "user_id",
            postgresql_where=text("status = 'digest_pending'"),
        ),
    )

    notification_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(server_default="0")
    scheduled_for: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class NotificationPreference(Base):
    """An explicit on/off for one type on one channel; absent rows mean the type's default."""

    __tablename__ = "notification_preferences"
    __table_args__ = (
        PrimaryKeyConstraint("user_id", "type", "channel"),
        CheckConstraint("channel IN ('in_app', 'push', 'email')", name="channel"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(10))
    enabled: Mapped[bool]


class NotificationSettings(Base):
    """Per-user delivery settings: quiet hours (local wall-clock), digest and content-free pushes."""

    __tablename__ = "notification_settings"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    quiet_start: Mapped[time | None]
    quiet_end: Mapped[time | None]
    daily_digest: Mapped[bool] = mapped_column(server_default="false")
    content_free_push: Mapped[bool] = mapped_column(server_default="false")


class Device(UUIDv7Key, Base):
    """A push token of one of the user's devices."""

    __tablename__ = "devices"
    __table_args__ = (CheckConstraint("platform IN ('ios', 'android', 'web')", name="platform"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(10))
    token: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
