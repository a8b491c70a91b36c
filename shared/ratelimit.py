"""Rate limits kept in Redis, shared by every API process."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.errors import RateLimited

WINDOW_SECONDS = 60


class RateLimiter:
    """Allows ``limit`` hits per key in a window that opens with the key's first hit."""

    def __init__(self, redis: Redis, limit_per_minute: int, *, window_seconds: int = WINDOW_SECONDS) -> None:
        self._redis = redis
        self._limit = limit_per_minute
        self._window = window_seconds

    async def hit(self, bucket: str, key: str) -> None:
        """Count one hit for ``key`` in ``bucket``; raise once the window's allowance is spent."""
        redis_key = f"rate:{bucket}:{key}"
        async with self._redis.pipeline(transaction=True) as pipe:
            # SET NX EX opens the window (and its expiry) only on the first hit; INCR keeps the TTL.
            pipe.set(redis_key, 0, ex=self._window, nx=True)
            pipe.incr(redis_key)
            pipe.ttl(redis_key)
            _, count, ttl = await pipe.execute()
        if int(count) > self._limit:
            retry_after = max(1, int(ttl))
            raise RateLimited(retry_after, f"too many {bucket} attempts; retry in {retry_after} s")
