"""Screening message text against the platform's and a club's blocklist terms."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.domain.chat.models import Chat
from shared.domain.moderation.models import BlocklistMode, BlocklistTerm


@dataclass(frozen=True, slots=True)
class Verdict:
    """The strongest match: ``reject`` beats ``flag``; ``term`` is the one that decided."""

    mode: BlocklistMode
    term: str


def normalize_term(term: str) -> str:
    """How terms are stored and compared: trimmed, inner whitespace collapsed, case-folded."""
    return " ".join(term.split()).lower()


def _matches(term: str, text: str) -> bool:
    # Whole words only, so a term does not hit inside a longer innocent word.
    return re.search(r"(?<!\w)" + re.escape(term).replace(r"\ ", r"\s+") + r"(?!\w)", text) is not None


async def screen(session: AsyncSession, chat_id: uuid.UUID, text: str) -> Verdict | None:
    """The blocklist verdict on ``text`` posted in ``chat_id``: global terms plus the club's, if a club room."""
    if not text.strip():
        return None
    club = select(Chat.club_id).where(Chat.id == chat_id).scalar_subquery()
    rows = (
        await session.execute(
            select(BlocklistTerm.term, BlocklistTerm.mode).where(
                or_(BlocklistTerm.club_id.is_(None), BlocklistTerm.club_id == club)
            )
        )
    ).all()
    if not rows:
        return None
    folded = text.lower()
    verdict: Verdict | None = None
    for term, mode in rows:
        if not _matches(term, folded):
            continue
        if mode == BlocklistMode.REJECT:
            return Verdict(BlocklistMode.REJECT, term)
        verdict = verdict or Verdict(BlocklistMode.FLAG, term)
    return verdict
