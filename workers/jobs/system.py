"""Housekeeping jobs: the worker heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from redis.asyncio import Redis

from workers.context import resources_of

HEARTBEAT_KEY = "tribe:worker:heartbeat"
# Three missed minutes before the key vanishes, so one slow beat does not read as a dead worker.
HEARTBEAT_TTL_S = 180


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON value of :data:`HEARTBEAT_KEY`: when and which worker last beat."""

    at: datetime
    worker: str


async def record_heartbeat(redis: Redis, *, worker: str, now: datetime) -> Heartbeat:
    """Write the heartbeat key with a TTL; readiness checks read it."""
    beat = Heartbeat(at=now, worker=worker)
    await redis.set(HEARTBEAT_KEY, msgspec.json.encode(beat), ex=HEARTBEAT_TTL_S)
    return beat


async def read_heartbeat(redis: Redis) -> Heartbeat | None:
    """The last heartbeat, or ``None`` when no worker beat within the TTL."""
    raw = await redis.get(HEARTBEAT_KEY)
    return None if raw is None else msgspec.json.decode(raw, type=Heartbeat)


async def heartbeat(ctx: dict[Any, Any]) -> None:
    """Cron job: record that a worker is alive."""
    res = resources_of(ctx)
    await record_heartbeat(res.redis, worker=res.worker_name, now=res.clock())
