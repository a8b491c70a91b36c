"""Checks an access token against the database: the user is active and the session not revoked.

Verified principals are cached in process for a few seconds (``TRIBE_ACCESS_CACHE_SECONDS``)
so a hot read costs no JWT decode and no auth query; writes always ask the database. Triggers on ``users`` and
``auth_sessions`` send ``NOTIFY access_changed, '<user uuid>'`` when a session is revoked
or deleted, or a user's status or roles change or the user is deleted; every API process
listens and forgets that user's entries, so a revocation still applies at once: in the
process that made it (logout, refresh reuse, password reset) before the response, in the
others as soon as the notification arrives. While the listener is down the cache is off
and every request goes to the database.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import utcnow
from shared.domain.auth.models import AuthSession
from shared.domain.auth.tokens import AccessClaims, AccessTokens
from shared.domain.users.models import AccountStatus, User
from shared.errors import Unauthenticated

# last_active_at is written at most this often per user, so reads stay reads.
ACTIVITY_RESOLUTION = timedelta(minutes=5)
ACCESS_CHANNEL = "access_changed"
# Enough for every live token of a busy process; past it the oldest entries go first.
MAX_CACHED_TOKENS = 100_000


class AccessCache:
    """Verified principals by access token, forgotten per user when access changes.

    ``put`` takes the generation read before the database check: if anything was
    forgotten meanwhile, the (possibly stale) result is not cached.
    """

    def __init__(
        self, ttl_seconds: float, max_entries: int = MAX_CACHED_TOKENS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """An inactive cache; a :class:`~shared.db.listen.NotifyListener` turns it on while it is listening."""
        self.ttl = ttl_seconds
        self.active = False
        self.generation = 0
        self._max = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[AccessClaims, float]] = {}
        self._by_user: dict[uuid.UUID, set[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> AccessClaims | None:
        """The cached principal of ``token`` while fresh and unexpired."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if self._clock() >= entry[1]:
            self._drop(token)
            return None
        return entry[0]

    def put(self, token: str, claims: AccessClaims, generation: int) -> None:
        """Cache ``claims`` unless the cache is off or access changed since ``generation`` was read."""
        if not self.active or generation != self.generation or self.ttl <= 0:
            return
        # Never past the token's own expiry, whose wall-clock time is in the claims.
        lifetime = min(self.ttl, claims.expires_at - time.time())
        if lifetime <= 0:
            return
        if token in self._entries:
            self._drop(token)
        while len(self._entries) >= self._max:
            self._drop(next(iter(self._entries)))
        self._entries[token] = (claims, self._clock() + lifetime)
        self._by_user.setdefault(claims.user_id, set()).add(token)

    def forget_user(self, user_id: uuid.UUID) -> None:
        """Drop every entry of ``user_id`` and refuse in-flight results read before now."""
        self.generation += 1
        for token in self._by_user.pop(user_id, ()):
            self._entries.pop(token, None)

    def clear(self) -> None:
        """Drop everything (the listener reconnected or stopped: notifications may be lost)."""
        self.generation += 1
        self._entries.clear()
        self._by_user.clear()

    def listening(self, up: bool) -> None:
        """Cache only while ``LISTEN access_changed`` is up; start from empty either way."""
        self.clear()
        self.active = up

    def notified(self, payload: str) -> None:
        """``NOTIFY access_changed, '<user uuid>'``: forget that user."""
        try:
            user_id = uuid.UUID(payload)
        except ValueError:
            # Unknown payloads are not ours to interpret: forget everything rather than guess.
            self.clear()
            return
        self.forget_user(user_id)

    def _drop(self, token: str) -> None:
        entry = self._entries.pop(token, None)
        if entry is None:
            return
        tokens = self._by_user.get(entry[0].user_id)
        if tokens is not None:
            tokens.discard(token)
            if not tokens:
                del self._by_user[entry[0].user_id]


class AccessChecker:
    """Turns a bearer token into verified claims, or raises :class:`Unauthenticated`."""

    def __init__(
        self, tokens: AccessTokens, reads: async_sessionmaker[AsyncSession], cache: AccessCache | None = None
    ) -> None:
        """``reads`` should be autocommit sessions: this runs on every cache miss."""
        self._tokens = tokens
        self._reads = reads
        # Not `cache or ...`: an empty cache has len() 0 and would be swapped for a disabled one.
        self.cache = cache if cache is not None else AccessCache(0)

    async def check(self, token: str, *, use_cache: bool = True) -> AccessClaims:
        """Verify the signature and claims, then that the account and session are still good.

        With ``use_cache`` a principal verified in the last few seconds is reused; its
        invalidation by another process travels by NOTIFY (milliseconds). Callers pass
        ``False`` for writes, which then always see the database's word.
        """
        if use_cache:
            cached = self.cache.get(token)
            if cached is not None:
                return cached
        generation = self.cache.generation
        claims = self._tokens.verify(token)
        async with self._reads() as session:
            row = (
                await session.execute(
                    select(User.status, User.roles, User.last_active_at, AuthSession.revoked_at)
                    .join(AuthSession, AuthSession.user_id == User.id)
                    .where(AuthSession.id == claims.session_id, User.id == claims.user_id)
                )
            ).one_or_none()
            if row is None or row.revoked_at is not None:
                raise Unauthenticated("session revoked", code="invalid_token")
            if row.status == AccountStatus.SUSPENDED:
                raise Unauthenticated("account suspended", code="account_suspended")
            now = utcnow()
            if row.last_active_at is None or now - row.last_active_at > ACTIVITY_RESOLUTION:
                await session.execute(update(User).where(User.id == claims.user_id).values(last_active_at=now))
        # Roles come from the row, not the token, so a demotion applies at once.
        verified = AccessClaims(
            user_id=claims.user_id, session_id=claims.session_id, roles=tuple(row.roles), expires_at=claims.expires_at
        )
        self.cache.put(token, verified, generation)
        return verified

    def forget_user(self, user_id: uuid.UUID) -> None:
        """Drop this process's cached access of ``user_id`` now (other processes hear the NOTIFY)."""
        self.cache.forget_user(user_id)
