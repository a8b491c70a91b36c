"""Bearer authentication for every route that does not opt out."""

from __future__ import annotations

import functools
import uuid

import structlog
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from api.runtime import Runtime
from shared import ids
from shared.errors import Unauthenticated

PUBLIC_PATHS = ["^/health", "^/metrics", "^/schema", "^/docs"]


@functools.lru_cache(maxsize=4096)
def _public_user_id(user_id: uuid.UUID) -> str:
    # Bound to every request's log context; the same few callers repeat, so encode once.
    return ids.encode(ids.Prefix.USER, user_id)


class BearerAuthentication(AbstractAuthenticationMiddleware):
    """Puts verified :class:`AccessClaims` on ``request.user``; anything else is 401."""

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
        """Verify ``Authorization: Bearer <jwt>`` against the token and the database."""
        # Scan the raw ASGI headers: building the header map costs more than the cache hit after it.
        header = ""
        for key, value in connection.scope["headers"]:
            if key == b"authorization":
                header = value.decode("latin-1")
                break
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send Authorization: Bearer <access token>", code="unauthenticated")
        runtime: Runtime = connection.app.state.runtime
        # Only reads may use the access cache: a write always re-checks the session and
        # roles in the database, so no privilege outlives its revocation on a mutation.
        method = connection.scope.get("method")
        claims = await runtime.access.check(token.strip(), use_cache=method == "GET" or method == "HEAD")
        structlog.contextvars.bind_contextvars(user_id=_public_user_id(claims.user_id))
        return AuthenticationResult(user=claims, auth=None)
