"""The ``users`` table: account, profile and status in one row."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, String
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, Timestamps, UUIDv7Key


class Role(StrEnum):
    """What a user may do beyond the basics."""

    USER = "user"
    MODERATOR = "moderator"
    ORGANIZER = "organizer"
    ADMIN = "admin"
    CURATOR = "curator"


class AccountStatus(StrEnum):
    """``pending``: no invites yet; ``suspended``: no login nor tokens; ``deleted``: anonymised, no login."""

    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"


class User(UUIDv7Key, Timestamps, Base):
    """A person with an account."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'active', 'suspended', 'deleted')", name="status"),
        CheckConstraint("(status = 'deleted') = (deleted_at IS NOT NULL)", name="deleted_at_matches_status"),
        CheckConstraint("email = lower(email)", name="email_lower"),
    )

    # Stored lower-cased so the unique constraint is case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    email_verified_at: Mapped[datetime | None]
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(80))
    bio: Mapped[str | None] = mapped_column(String(500))
    city: Mapped[str | None] = mapped_column(String(120))
    avatar_url: Mapped[str | None] = mapped_column(String(1024))
    interests: Mapped[list[str]] = mapped_column(ARRAY(String(50)), server_default="{}")
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    icebreaker_prompt_id: Mapped[str | None] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(20)), server_default="{user}")
    status: Mapped[str] = mapped_column(String(16), server_default=AccountStatus.ACTIVE.value)
    signup_source: Mapped[str | None] = mapped_column(String(40))
    # Derived from active subscriptions by the payments feature; never set by a client.
    premium_tier: Mapped[str | None] = mapped_column(String(20))
    last_active_at: Mapped[datetime | None]
    # Set when the account was deleted (and anonymised); the row stays so references hold.
    deleted_at: Mapped[datetime | None]
