"""Access tokens: short-lived JWTs with pinned algorithm, issuer, audience and type."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import jwt
import msgspec

from shared import ids
from shared.config import Settings
from shared.errors import Unauthenticated

ALGORITHM = "HS256"
ACCESS_TYPE = "access"


class AccessClaims(msgspec.Struct, frozen=True):
    """What a verified access token says about its bearer."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    roles: tuple[str, ...]
    expires_at: int


class AccessTokens:
    """Issues and verifies access JWTs with one secret and pinned claims."""

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self.ttl = timedelta(seconds=settings.access_token_ttl_seconds)

    def issue(self, user_id: uuid.UUID, session_id: uuid.UUID, roles: tuple[str, ...], now: datetime) -> str:
        """A signed access token for ``user_id`` valid for the configured TTL."""
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": ids.encode(ids.Prefix.USER, user_id),
            "sid": str(session_id),
            "typ": ACCESS_TYPE,
            "roles": list(roles),
            "iat": int(now.timestamp()),
            "exp": int((now + self.ttl).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid access token; :class:`Unauthenticated` for anything else."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "typ", "sid"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("access token expired", code="token_expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("invalid access token", code="invalid_token") from None
        if claims.get("typ") != ACCESS_TYPE:
            raise Unauthenticated("not an access token", code="invalid_token")
        try:
            user_id = ids.decode(ids.Prefix.USER, claims["sub"])
            session_id = uuid.UUID(claims["sid"])
            roles = tuple(str(r) for r in claims.get("roles", []))
        except (ids.InvalidId, ValueError, TypeError):
            raise Unauthenticated("invalid access token", code="invalid_token") from None
        return AccessClaims(user_id=user_id, session_id=session_id, roles=roles, expires_at=int(claims["exp"]))
