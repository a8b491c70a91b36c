"""The ``premium_offer`` nudge: someone who hits ``premium_required`` hears about the plans, once a day."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.notifications.services import notify

OFFER_TITLE = "Unlock this with Tribe Plus"
OFFER_BODY = "Premium members get exclusive clubs and events. See the plans."


async def offer_premium(
    sessions: async_sessionmaker[AsyncSession], user_id: uuid.UUID, now: datetime, detail: str
) -> bool:
    """Notify ``user_id`` of the premium plans unless they were already told today (UTC); whether it was sent."""
    async with sessions.begin() as session:
        stored = await notify(
            session,
            user_id,
            "premium_offer",
            {"offer_title": OFFER_TITLE, "offer_body": OFFER_BODY, "reason": detail[:200]},
            # The daily key makes repeats within a day a no-op, even from concurrent requests.
            dedupe_key=f"premium_offer:{now.date().isoformat()}",
        )
    return stored is not None
