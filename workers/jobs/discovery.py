"""Discovery jobs: refresh one user's recommendations (debounced on signal changes) and the hourly sweep."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import msgspec
import structlog
from arq.connections import ArqRedis

from shared.domain.discovery.engine import active_user_ids
from shared.domain.discovery.models import RunTrigger
from shared.domain.discovery.services import DiscoveryService
from workers.context import JobContext, resources_of
from workers.jobs.base import JobSpec

log = structlog.stdlib.get_logger(__name__)

DEBOUNCE_S = 60
"""Signals within this window (a burst of RSVPs, a friend and a club join) cause one refresh, this long after."""
STALE_AFTER_S = 50 * 60
"""The hourly sweep skips users refreshed more recently than this (a signal refresh already did it)."""
SWEEP_CAP = 20_000
"""At most this many refreshes are queued per sweep; the rest wait for the next hour."""


class RefreshRecommendations(msgspec.Struct, frozen=True, kw_only=True):
    """Recompute ``user_id``'s recommendations; ``trigger`` says why (``signal`` or ``cron``)."""

    user_id: uuid.UUID
    trigger: str = RunTrigger.SIGNAL.value


async def refresh_recommendations(ctx: JobContext, request: RefreshRecommendations) -> None:
    """Replace the user's stored recommendations with fresh ones (idempotent)."""
    res = ctx.resources
    await DiscoveryService(res.sessions, clock=res.clock).refresh(request.user_id, RunTrigger(request.trigger))


REFRESH_RECOMMENDATIONS = JobSpec(
    name="refresh_recommendations",
    payload_type=RefreshRecommendations,
    run=refresh_recommendations,
    max_tries=3,
    timeout_s=30.0,
)


async def enqueue_refresh(redis: ArqRedis, user_id: uuid.UUID, *, now_s: float | None = None) -> bool:
    """Queue a debounced signal refresh: one job per user per window, run at the window's end."""
    bucket = int((time.time() if now_s is None else now_s) // DEBOUNCE_S)
    return await REFRESH_RECOMMENDATIONS.enqueue(
        redis, RefreshRecommendations(user_id=user_id), cause=f"{user_id}:{bucket}", defer_by=DEBOUNCE_S
    )


async def refresh_active_users(ctx: dict[Any, Any]) -> int:
    """Cron job: queue a refresh for everyone active in the last 30 days whose list is older than ~an hour."""
    res = resources_of(ctx)
    now = res.clock()
    async with res.sessions() as session:
        users = await active_user_ids(session, now, stale_after=timedelta(seconds=STALE_AFTER_S), cap=SWEEP_CAP)
    hour = now.strftime("%Y%m%d%H")
    queued = 0
    for user_id in users:
        queued += await REFRESH_RECOMMENDATIONS.enqueue(
            res.redis,
            RefreshRecommendations(user_id=user_id, trigger=RunTrigger.CRON.value),
            cause=f"cron:{user_id}:{hour}",
        )
    if queued:
        log.info("discovery.refresh_queued", count=queued)
    return queued
