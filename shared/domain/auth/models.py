"""Sessions (refresh-token families), refresh tokens and one-time email tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, UUIDv7Key


class AuthSession(UUIDv7Key, Base):
    """One login: the family every rotated refresh token of it belongs to."""

    __tablename__ = "auth_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(40))


class RefreshToken(UUIDv7Key, Base):
    """A single-use refresh token, stored only as its SHA-256 hash."""

    __tablename__ = "refresh_tokens"

    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # Set once, by the conditional UPDATE that spends it; a second spend is a reuse.
    used_at: Mapped[datetime | None]


class TokenPurpose(StrEnum):
    """What a mailed one-time token is good for."""

    PASSWORD_RESET = "password_reset"
    EMAIL_VERIFY = "email_verify"


class OneTimeToken(UUIDv7Key, Base):
    """A mailed, single-use, expiring token, stored only as its hash."""

    __tablename__ = "one_time_tokens"
    __table_args__ = (
        CheckConstraint("purpose IN ('password_reset', 'email_verify')", name="purpose"),
        Index("ix_one_time_tokens_user_purpose", "user_id", "purpose"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
