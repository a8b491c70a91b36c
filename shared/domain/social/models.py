"""Friend requests, friendships, follows, blocks, vouches and invite codes."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, UUIDv7Key


class FriendRequestStatus(StrEnum):
    """Where a friend request stands; only ``pending`` ones can still change."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CANCELLED = "cancelled"


class FriendRequest(UUIDv7Key, Base):
    """One user asking another to be friends; resolved rows are kept as history."""

    __tablename__ = "friend_requests"
    __table_args__ = (
        CheckConstraint("sender_id <> recipient_id", name="not_self"),
        CheckConstraint("status IN ('pending', 'accepted', 'declined', 'cancelled')", name="status"),
        # At most one open request per pair, whichever direction it goes.
        Index(
            "uq_friend_requests_pending_pair",
            func.least(text("sender_id"), text("recipient_id")),
            func.greatest(text("sender_id"), text("recipient_id")),
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_friend_requests_recipient_pending", "recipient_id", "id", postgresql_where=text("status = 'pending'")
        ),
        Index("ix_friend_requests_sender_pending", "sender_id", "id", postgresql_where=text("status = 'pending'")),
    )

    sender_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    recipient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), server_default=FriendRequestStatus.PENDING.value)
    created_at: Mapped[datetime]
    responded_at: Mapped[datetime | None]


class Friendship(Base):
    """Two users who are friends: one row per pair, stored as (lower id, higher id)."""

    __tablename__ = "friendships"
    __table_args__ = (
        CheckConstraint("user_low_id < user_high_id", name="canonical_pair"),
        Index("ix_friendships_user_high_id", "user_high_id"),
    )

    user_low_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    user_high_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime]


class Follow(Base):
    """A one-way follow, typically of a creator."""

    __tablename__ = "follows"
    __table_args__ = (
        CheckConstraint("follower_id <> followee_id", name="not_self"),
        Index("ix_follows_followee_created", "followee_id", "created_at", "follower_id"),
        Index("ix_follows_follower_created", "follower_id", "created_at", "followee_id"),
    )

    follower_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    followee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime]


class Block(Base):
    """``blocker`` hides from and refuses contact with ``blocked``."""

    __tablename__ = "blocks"
    __table_args__ = (
        CheckConstraint("blocker_id <> blocked_id", name="not_self"),
        Index("ix_blocks_blocked_id", "blocked_id"),
    )

    blocker_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    blocked_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime]


class Vouch(UUIDv7Key, Base):
    """A user's word for another; revoking keeps the row so the history stays."""

    __tablename__ = "vouches"
    __table_args__ = (
        CheckConstraint("voucher_id <> vouchee_id", name="not_self"),
        # One standing vouch per pair; a revoked one does not count, so it can be given again.
        Index(
            "uq_vouches_active_pair",
            "voucher_id",
            "vouchee_id",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
        Index("ix_vouches_vouchee_active", "vouchee_id", "id", postgresql_where=text("revoked_at IS NULL")),
    )

    voucher_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    vouchee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    note: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class InviteCode(UUIDv7Key, Base):
    """A single-use sign-up code; ``used_by`` records whom its owner invited."""

    __tablename__ = "invite_codes"
    __table_args__ = (
        # A used code stays used even if its invitee is later deleted (used_by_id goes NULL).
        CheckConstraint("used_by_id IS NULL OR used_at IS NOT NULL", name="used_at_set"),
        Index("ix_invite_codes_inviter_id", "inviter_id", "id"),
    )

    code: Mapped[str] = mapped_column(String(32), unique=True)
    inviter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # Unique: an account is created by at most one invite.
    used_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), unique=True)
    used_at: Mapped[datetime | None]
