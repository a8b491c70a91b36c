"""Checks an access token against the database: the user is active and the session not revoked."""

from __future__ import annotations

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


class AccessChecker:
    """Turns a bearer token into verified claims, or raises :class:`Unauthenticated`."""

    def __init__(self, tokens: AccessTokens, reads: async_sessionmaker[AsyncSession]) -> None:
        """``reads`` should be autocommit sessions: this runs on every request."""
        self._tokens = tokens
        self._reads = reads

    async def check(self, token: str) -> AccessClaims:
        """Verify the signature and claims, then that the account and session are still good."""
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
        return AccessClaims(
            user_id=claims.user_id, session_id=claims.session_id, roles=tuple(row.roles), expires_at=claims.expires_at
        )
