"""The ``media`` table, user reports on media, and the moderators' append-only audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, Timestamps, UUIDv7Key


class MediaType(StrEnum):
    """What kind of file a media item is."""

    PHOTO = "photo"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"


class Purpose(StrEnum):
    """What a media item is uploaded for; decides its key prefix and what it may be attached to."""

    AVATAR = "avatar"
    POST = "post"
    EVENT = "event"
    MESSAGE = "message"
    CLUB = "club"
    PLACE = "place"


class MediaStatus(StrEnum):
    """Where a media item is in its life."""

    PENDING = "pending"  # upload URL issued, bytes not confirmed
    PROCESSING = "processing"  # bytes verified, worker making variants
    PENDING_REVIEW = "pending_review"  # processed, waiting for a moderator
    READY = "ready"
    REJECTED = "rejected"  # by verification or by a moderator; objects deleted
    FAILED = "failed"  # processing could not read it
    DELETED = "deleted"  # by its owner; objects being purged


class PreviewStatus(StrEnum):
    """Whether derived images (thumbnails, a poster frame) exist."""

    PENDING = "pending"
    READY = "ready"
    UNAVAILABLE = "unavailable"  # no decoder for this format here (video posters, HEIC)
    NOT_APPLICABLE = "not_applicable"  # audio, documents


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Media(UUIDv7Key, Timestamps, Base):
    """One uploaded file, its verified facts and its derived variants."""

    __tablename__ = "media"
    __table_args__ = (
        CheckConstraint(_in("type", MediaType), name="type"),
        CheckConstraint(_in("purpose", Purpose), name="purpose"),
        CheckConstraint(_in("status", MediaStatus), name="status"),
        CheckConstraint(_in("preview_status", PreviewStatus), name="preview_status"),
        CheckConstraint("declared_size_bytes > 0", name="declared_size_positive"),
        # Event and club media live under their target's prefix, so they need one.
        CheckConstraint("purpose NOT IN ('event', 'club') OR target_id IS NOT NULL", name="target_required"),
        CheckConstraint("(attached_to_id IS NULL) = (attached_to_kind IS NULL)", name="attachment_pair"),
        UniqueConstraint("object_key"),
        # The abandoned-upload sweep scans pending rows by age.
        Index("ix_media_pending_created", "created_at", postgresql_where=text("status = 'pending'")),
        Index("ix_media_owner_id", "owner_id", "id"),
        Index("ix_media_review_queue", "id", postgresql_where=text("status = 'pending_review'")),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[uuid.UUID | None]
    content_type: Mapped[str] = mapped_column(String(100))
    file_name: Mapped[str] = mapped_column(String(255))
    declared_size_bytes: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    object_key: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), server_default=MediaStatus.PENDING.value)
    status_reason: Mapped[str | None] = mapped_column(String(500))
    requires_review: Mapped[bool] = mapped_column(server_default="false")
    width: Mapped[int | None]
    height: Mapped[int | None]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    preview_status: Mapped[str] = mapped_column(String(16), server_default=PreviewStatus.PENDING.value)
    # Variant name -> object key, e.g. {"w256": ".../w256.webp"}.
    variants: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    attached_to_kind: Mapped[str | None] = mapped_column(String(16))
    attached_to_id: Mapped[uuid.UUID | None]
    completed_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]


class CaseStatus(StrEnum):
    """Whether a report still needs a moderator."""

    OPEN = "open"
    RESOLVED = "resolved"


class ModerationCase(UUIDv7Key, Base):
    """A user's report on a media item; one per reporter and item."""

    __tablename__ = "media_moderation_cases"
    __table_args__ = (
        CheckConstraint(_in("status", CaseStatus), name="status"),
        UniqueConstraint("media_id", "reporter_id"),
        Index("ix_media_moderation_cases_open", "media_id", postgresql_where=text("status = 'open'")),
    )

    media_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    reporter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), server_default=CaseStatus.OPEN.value)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    resolved_at: Mapped[datetime | None]


class ModerationAction(StrEnum):
    """What a moderator did."""

    APPROVE = "approve"
    REJECT = "reject"


class MediaAuditEntry(UUIDv7Key, Base):
    """One moderator action; rows are never changed or removed (a trigger refuses it)."""

    __tablename__ = "media_audit_log"
    __table_args__ = (CheckConstraint(_in("action", ModerationAction), name="action"),)

    # Plain ids, not foreign keys: the log must outlive the media and the accounts it names.
    media_id: Mapped[uuid.UUID] = mapped_column(index=True)
    moderator_id: Mapped[uuid.UUID]
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(500))
    previous_status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
