"""The ``blocklist_terms``, ``moderation_cases`` and ``moderation_audit_log`` tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, UUIDv7Key


class BlocklistMode(StrEnum):
    """What a matching term does to a message: refuse it, or store it hidden until reviewed."""

    REJECT = "reject"
    FLAG = "flag"


class CaseStatus(StrEnum):
    """Whether a case still needs a moderator."""

    OPEN = "open"
    RESOLVED = "resolved"


class CaseAction(StrEnum):
    """How a moderator resolved a case."""

    APPROVE = "approve"
    REMOVE = "remove"
    DISMISS = "dismiss"


class AuditAction(StrEnum):
    """Every kind of moderator action the audit log records."""

    CASE_APPROVE = "case.approve"
    CASE_REMOVE = "case.remove"
    CASE_DISMISS = "case.dismiss"
    MESSAGE_REMOVE = "message.remove"
    # A room moderator closed a group, event or club chat to non-moderators, or opened it again.
    CHAT_READ_ONLY_ON = "chat.read_only_on"
    CHAT_READ_ONLY_OFF = "chat.read_only_off"
    BLOCKLIST_ADD = "blocklist.add"
    BLOCKLIST_DELETE = "blocklist.delete"
    # Places and curated lists (discovery), hidden or removed by a moderator, or a report dismissed.
    PLACE_HIDE = "place.hide"
    PLACE_REMOVE = "place.remove"
    PLACE_RESTORE = "place.restore"
    LIST_HIDE = "list.hide"
    LIST_REMOVE = "list.remove"
    LIST_RESTORE = "list.restore"
    CONTENT_DISMISS = "content.dismiss"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class BlocklistTerm(UUIDv7Key, Base):
    """A word or phrase refused or flagged in chat messages: platform-wide (no club) or in one club's room."""

    __tablename__ = "blocklist_terms"
    __table_args__ = (
        CheckConstraint(_in("mode", BlocklistMode), name="mode"),
        CheckConstraint("length(term) > 0 AND term = lower(term)", name="term_normalized"),
        # One entry per term and scope, so adding a term twice is a conflict, not a second row.
        Index("uq_blocklist_terms_global_term", "term", unique=True, postgresql_where=text("club_id IS NULL")),
        Index(
            "uq_blocklist_terms_club_term", "club_id", "term", unique=True, postgresql_where=text("club_id IS NOT NULL")
        ),
    )

    club_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clubs.id", ondelete="CASCADE"))
    term: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class MessageCase(UUIDv7Key, Base):
    """A report on a chat message (``reporter_id`` is ``None`` when the blocklist flagged it)."""

    __tablename__ = "moderation_cases"
    __table_args__ = (
        CheckConstraint(_in("status", CaseStatus), name="status"),
        CheckConstraint(f"resolution IS NULL OR {_in('resolution', CaseAction)}", name="resolution"),
        CheckConstraint("(status = 'open') = (resolved_at IS NULL)", name="resolved"),
        # One open case per reporter and message; a reporter may report again after a resolution.
        Index(
            "uq_moderation_cases_open_report",
            "message_id",
            "reporter_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_moderation_cases_open", "id", postgresql_where=text("status = 'open'")),
        Index("ix_moderation_cases_message_id", "message_id"),
    )

    chat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_messages.id", ondelete="CASCADE"))
    reporter_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), server_default=CaseStatus.OPEN.value)
    resolution: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(1000))
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    resolved_at: Mapped[datetime | None]


class ModerationAuditEntry(UUIDv7Key, Base):
    """One moderator action; rows are never changed or removed (a trigger refuses it)."""

    __tablename__ = "moderation_audit_log"
    __table_args__ = (
        CheckConstraint(_in("action", AuditAction), name="action"),
        Index("ix_moderation_audit_log_target_id", "target_id"),
    )

    # Plain ids, not foreign keys: the log outlives the messages, chats and accounts it names.
    actor_id: Mapped[uuid.UUID]
    action: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[uuid.UUID]
    case_id: Mapped[uuid.UUID | None]
    chat_id: Mapped[uuid.UUID | None]
    club_id: Mapped[uuid.UUID | None]
    note: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
