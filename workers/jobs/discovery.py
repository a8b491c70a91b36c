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
PENDING_REFRESHES_KEY = "tribe:discovery:pending-refreshes"
"""Redis sorted set: user id → the end of their debounce window (epoch seconds)."""
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
    """Mark ``user_id`` for a debounced refresh; ``queue_due_refreshes`` queues it when the window ends.

    The first signal opens the window (NX keeps its end); later ones inside it add nothing. The wait
    lives in a Redis sorted set rather than as a deferred arq job, so a queue never holds a job that is
    not due yet (burst workers, as tests run them, stop only on an empty queue).
    """
    now = time.time() if now_s is None else now_s
    return bool(await redis.zadd(PENDING_REFRESHES_KEY, {str(user_id): now + DEBOUNCE_S}, nx=True))


async def queue_due_refreshes(redis: ArqRedis, now_s: float) -> int:
    """Queue a refresh for every user whose debounce window has ended; how many were queued."""
    due = await redis.zrangebyscore(PENDING_REFRESHES_KEY, "-inf", now_s)
    queued = 0
    for raw in due:
        member = raw.decode() if isinstance(raw, bytes) else str(raw)
        user_id = uuid.UUID(member)
        # Queue, then forget: a crash in between refreshes twice at worst and never drops one. A signal
        # arriving meanwhile is already in the database the job reads.
        queued += await REFRESH_RECOMMENDATIONS.enqueue(
            redis, RefreshRecommendations(user_id=user_id), cause=f"{user_id}:{int(now_s)}"
        )
        await redis.zrem(PENDING_REFRESHES_KEY, member)
    return queued


async def flush_pending_refreshes(ctx: dict[Any, Any]) -> int:
    """Cron job (every 15 s): queue the debounced refreshes that are due."""
    res = resources_of(ctx)
    return await queue_due_refreshes(res.redis, res.clock().timestamp())


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
