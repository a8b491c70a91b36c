"""Presence: a user is online while at least one of their sockets is open on any gateway.

Each gateway process keeps, per connected user, a member (its own instance id) in the Redis
sorted set ``presence:<user_uuid>`` scored with an expiry time. The gateway refreshes the score
on its heartbeat and removes its member when the user's last socket on it closes; a crashed
gateway's members simply expire. Online means: some member's expiry is still in the future.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from redis.asyncio import Redis

PRESENCE_KEY_PREFIX = "presence:"


def presence_key(user_id: uuid.UUID) -> str:
    """The Redis key holding ``user_id``'s live gateway members."""
    return f"{PRESENCE_KEY_PREFIX}{user_id}"


class Presence:
    """Reads and writes the presence sorted sets."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def mark_online(self, instance: str, user_ids: Iterable[uuid.UUID], ttl_s: float) -> None:
        """Record that ``instance`` holds sockets of ``user_ids`` for the next ``ttl_s`` seconds."""
        expires = time.time() + ttl_s
        # The key outlives its members by the TTL so an abandoned set cleans itself up.
        key_ttl_ms = max(int(ttl_s * 2000), 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                key = presence_key(user_id)
                pipe.zadd(key, {instance: expires})
                pipe.pexpire(key, key_ttl_ms)
            await pipe.execute()

    async def arrive(self, instance: str, user_id: uuid.UUID, ttl_s: float) -> bool:
        """Mark ``user_id`` online on ``instance``; ``True`` if no gateway had them online before."""
        key = presence_key(user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zcount(key, time.time(), "+inf")
            pipe.zadd(key, {instance: time.time() + ttl_s})
            pipe.pexpire(key, max(int(ttl_s * 2000), 1000))
            before, _, _ = await pipe.execute()
        return int(before) == 0

    async def mark_offline(self, instance: str, user_id: uuid.UUID) -> bool:
        """``instance`` holds no more sockets of ``user_id``; ``True`` if no gateway has them online now."""
        key = presence_key(user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(key, instance)
            pipe.zcount(key, time.time(), "+inf")
            _, after = await pipe.execute()
        return int(after) == 0

    async def is_online(self, user_id: uuid.UUID) -> bool:
        """Whether some gateway holds an open socket of ``user_id``."""
        live: int = await self._redis.zcount(presence_key(user_id), time.time(), "+inf")
        return live > 0

    async def online_of(self, user_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """The users among ``user_ids`` that are online."""
        users = list(user_ids)
        if not users:
            return set()
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in users:
                pipe.zcount(presence_key(user_id), now, "+inf")
            counts = await pipe.execute()
        return {user_id for user_id, count in zip(users, counts, strict=True) if count}
