"""Event jobs: the reminder sweep."""

from __future__ import annotations

from typing import Any

import structlog

from shared.domain.events.services import EventService
from workers.context import resources_of
from workers.jobs.media import media_service

log = structlog.stdlib.get_logger(__name__)


async def send_event_reminders(ctx: dict[Any, Any]) -> int:
    """Cron job: queue due 24 h and 1 h reminders; a second run in the same window sends nothing new."""
    res = resources_of(ctx)
    sent = await EventService(res.settings, res.sessions, clock=res.clock, media=media_service(res)).send_due_reminders(
        res.clock()
    )
    if sent:
        log.info("events.reminders_queued", count=sent)
    return sent
