"""Fixed-window rate limits kept in Redis, shared by every API process."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from shared.errors import RateLimited

WINDOW_SECONDS = 60


class RateLimiter:
    """Allows ``limit`` hits per key per minute; the next one raises :class:`RateLimited`."""

    def __init__(self, redis: Redis, limit_per_minute: int) -> None:
        self._redis = redis
        self._limit = limit_per_minute

    async def hit(self, bucket: str, key: str) -> None:
        """Count one hit for ``key`` in ``bucket``; raise once the window's allowance is spent."""
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        redis_key = f"rate:{bucket}:{key}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(redis_key)
            pipe.expire(redis_key, WINDOW_SECONDS + 1)
            count, _ = await pipe.execute()
        if int(count) > self._limit:
            retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now) + 1)
            raise RateLimited(retry_after, f"too many {bucket} attempts; retry in {retry_after} s")
