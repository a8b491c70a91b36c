"""Payment housekeeping jobs: boost statuses follow their windows."""

from __future__ import annotations

from typing import Any

from shared.domain.payments.boosts import refresh_boost_statuses
from workers.context import resources_of


async def refresh_boosts(ctx: dict[Any, Any]) -> int:
    """Cron job: store ``active``/``expired`` on boosts whose window opened or closed (reads never wait for it)."""
    res = resources_of(ctx)
    return await refresh_boost_statuses(res.sessions, res.clock())
