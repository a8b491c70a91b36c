"""Low-level writes shared by the chat service and the moderation service (no service imports here)."""

from __future__ import annotations

import uuid

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared import ids
from shared.domain.moderation.models import AuditAction, ModerationAuditEntry

# The reason of a case the blocklist opened (the chat send writes it in its one statement).
BLOCKLIST_REASON_PREFIX = "blocklist: "


async def write_audit(
    session: AsyncSession,
    actor_id: uuid.UUID,
    action: AuditAction,
    target_id: uuid.UUID,
    *,
    case_id: uuid.UUID | None = None,
    chat_id: uuid.UUID | None = None,
    club_id: uuid.UUID | None = None,
    note: str | None = None,
) -> None:
    """Append one row to the moderation audit log in the caller's transaction."""
    await session.execute(
        insert(ModerationAuditEntry).values(
            id=ids.uuid7(),
            actor_id=actor_id,
            action=action.value,
            target_id=target_id,
            case_id=case_id,
            chat_id=chat_id,
            club_id=club_id,
            note=note,
        )
    )
