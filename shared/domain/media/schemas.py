"""Request and response bodies of the media endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

MediaTypeName = Literal["photo", "video", "audio", "document"]
PurposeName = Literal["avatar", "post", "event", "message", "club", "place"]
ContentType = Annotated[str, msgspec.Meta(min_length=3, max_length=100, pattern=r"^[\w.+-]+/[\w.+-]+$")]
FileName = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
SizeBytes = Annotated[int, msgspec.Meta(ge=1)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class UploadRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Ask for an upload slot."""

    type: MediaTypeName
    content_type: ContentType
    file_name: FileName
    size_bytes: SizeBytes
    purpose: PurposeName
    target_id: str | None = None


class PresignedPostForm(msgspec.Struct):
    """POST these ``fields`` and then a ``file`` part, as multipart/form-data, to ``url``."""

    url: str
    fields: dict[str, str]


class UploadTicket(msgspec.Struct):
    """Where and until when to upload: a presigned POST form, or a presigned PUT URL."""

    media_id: str
    upload: PresignedPostForm
    upload_url: str
    expires_at: datetime


class CompleteResult(msgspec.Struct, omit_defaults=True):
    """What verification decided."""

    status: str
    reason: str | None = None


class MediaVariant(msgspec.Struct):
    """One derived rendition."""

    name: str
    url: str
    content_type: str


class MediaView(msgspec.Struct):
    """A media item as its owner (or a moderator) sees it."""

    id: str
    owner_id: str
    type: str
    purpose: str
    content_type: str
    file_name: str
    size_bytes: int | None
    status: str
    status_reason: str | None
    width: int | None
    height: int | None
    duration_ms: int | None
    preview_status: str
    url: str | None
    variants: list[MediaVariant]
    created_at: datetime


class ReportRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A user's report on a media item."""

    reason: Reason


class ReportResult(msgspec.Struct):
    """The case a report opened (or joined)."""

    case_id: str
    status: str


class ModerationDecision(msgspec.Struct, forbid_unknown_fields=True):
    """A moderator's optional note with an approve or reject."""

    reason: Reason | None = None


class QueueItem(msgspec.Struct):
    """A media item waiting for a moderator, with the reports on it."""

    media: MediaView
    open_reports: int
    report_reasons: list[str]


class ModerationResult(msgspec.Struct):
    """The status after a moderator's decision."""

    id: str
    status: str
