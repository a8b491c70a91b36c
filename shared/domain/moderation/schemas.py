"""Request and response bodies of the moderation endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from shared.domain.chat.schemas import Message

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Note = Annotated[str, msgspec.Meta(max_length=1000)]
Term = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class ReportRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Why the caller reports a message."""

    reason: Reason


class ResolveRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A moderator's decision: show the message, remove it, or close the report without action."""

    action: Literal["approve", "remove", "dismiss"]
    note: Note | None = None


class CaseView(msgspec.Struct, kw_only=True):
    """A moderation case and the message it is about (as it is now)."""

    id: str
    chat_id: str
    message_id: str
    reporter_id: str | None
    reason: str
    status: str
    resolution: str | None
    note: str | None
    resolved_by: str | None
    created_at: datetime
    resolved_at: datetime | None
    message: Message


class BlocklistTermCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A word or phrase to refuse (``reject``) or hide for review (``flag``)."""

    term: Term
    mode: Literal["reject", "flag"] = "reject"


class BlocklistTermView(msgspec.Struct, kw_only=True):
    """One blocklist entry; ``club_id`` is ``None`` for the platform-wide list."""

    id: str
    term: str
    mode: str
    club_id: str | None
    created_by: str | None
    created_at: datetime
