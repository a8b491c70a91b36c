"""The ``chats``, ``chat_participants`` and ``chat_messages`` tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, Uuid, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, Timestamps, UUIDv7Key


class ChatType(StrEnum):
    """What kind of conversation a chat is."""

    DIRECT = "direct"
    GROUP = "group"
    # Managed rooms: membership follows confirmed RSVPs / active club membership (see rooms.py).
    EVENT = "event"
    CLUB = "club"


MANAGED_TYPES = frozenset({ChatType.EVENT.value, ChatType.CLUB.value})


class ParticipantRole(StrEnum):
    """A participant's rights in a chat: admins manage members and may delete any message."""

    ADMIN = "admin"
    MEMBER = "member"


class ModerationStatus(StrEnum):
    """Whether a message is shown to the other participants."""

    VISIBLE = "visible"
    FLAGGED = "flagged"
    REMOVED = "removed"


class Chat(UUIDv7Key, Timestamps, Base):
    """A conversation; ``last_seq`` is the seq of its newest message (0 when empty)."""

    __tablename__ = "chats"
    __table_args__ = (
        CheckConstraint("type IN ('direct', 'group', 'event', 'club')", name="type"),
        # A direct chat is identified by its pair, so creating it twice finds the first one.
        CheckConstraint("(type = 'direct') = (direct_key IS NOT NULL)", name="direct_key"),
        CheckConstraint("last_seq >= 0", name="last_seq"),
        # A managed room belongs to exactly one event or club, and only managed rooms have one.
        CheckConstraint("(type = 'event') = (event_id IS NOT NULL)", name="event_room"),
        CheckConstraint("(type = 'club') = (club_id IS NOT NULL)", name="club_room"),
    )

    type: Mapped[str] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(String(120))
    # "<smaller uuid>:<larger uuid>" of the two users of a direct chat.
    direct_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    last_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    last_activity_at: Mapped[datetime] = mapped_column(server_default=func.now())
    event_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), unique=True)
    club_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clubs.id", ondelete="CASCADE"), unique=True)
    # Only room moderators post in a read-only room (announcements, a cancelled event's chat).
    read_only: Mapped[bool] = mapped_column(server_default=text("false"))


class ChatParticipant(Base):
    """A user in a chat, with their role and how far they have read."""

    __tablename__ = "chat_participants"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'member')", name="role"),
        CheckConstraint("last_read_seq >= 0", name="last_read_seq"),
        # The chat list of a user starts here.
        Index("ix_chat_participants_user_id", "user_id"),
    )

    chat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), server_default=ParticipantRole.MEMBER.value)
    last_read_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    muted_until: Mapped[datetime | None]
    joined_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ChatMessage(UUIDv7Key, Base):
    """One message; a deleted one keeps its row (the tombstone) without content."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        UniqueConstraint("chat_id", "seq", name="uq_chat_messages_chat_id_seq"),
        # A resend with the same client id is the same message.
        UniqueConstraint(
            "chat_id", "sender_id", "client_message_id", name="uq_chat_messages_chat_id_sender_id_client_message_id"
        ),
        CheckConstraint("moderation_status IN ('visible', 'flagged', 'removed')", name="moderation_status"),
        CheckConstraint("(deleted_at IS NULL) = (content IS NOT NULL)", name="tombstone"),
        CheckConstraint("seq > 0", name="seq"),
    )

    chat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    sender_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    client_message_id: Mapped[str] = mapped_column(String(64))
    # none_as_null: a tombstone has SQL NULL content, not a JSON null.
    content: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    reply_to_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("chat_messages.id", ondelete="SET NULL"))
    mentions: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid), server_default="{}")
    sent_at: Mapped[datetime] = mapped_column(server_default=func.now())
    edited_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    deleted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    moderation_status: Mapped[str] = mapped_column(String(16), server_default=ModerationStatus.VISIBLE.value)
