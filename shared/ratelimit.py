"""Rate limits kept in Redis, shared by every API process."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.errors import RateLimited

WINDOW_SECONDS = 60

# KEYS: the counter. ARGV: window seconds. The first hit opens the window (and its expiry); later
# hits keep the TTL. One command, so a hit is one round trip and no MULTI/EXEC (every chat message
# pays for it). Returns {count, ttl}.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('TTL', KEYS[1])}
"""


class RateLimiter:
    """Allows ``limit`` hits per key in a window that opens with the key's first hit."""

    def __init__(self, redis: Redis, limit_per_minute: int, *, window_seconds: int = WINDOW_SECONDS) -> None:
        self._limit = limit_per_minute
        self._window = window_seconds
        self._hit = redis.register_script(_HIT)

    async def hit(self, bucket: str, key: str) -> None:
        """Count one hit for ``key`` in ``bucket``; raise once the window's allowance is spent."""
        count, ttl = await self._hit(keys=[f"rate:{bucket}:{key}"], args=[self._window])
        if int(count) > self._limit:
            retry_after = max(1, int(ttl))
            raise RateLimited(retry_after, f"too many {bucket} attempts; retry in {retry_after} s")
