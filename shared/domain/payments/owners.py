"""Who may sell something: a creator for themselves, a club's owner for the club (tiers and their promo codes)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.auth.tokens import AccessClaims
from shared.domain.clubs.models import Club
from shared.errors import NotFound, PermissionDenied


def require_self(caller: AccessClaims, user_id: uuid.UUID, what: str) -> None:
    """403 unless ``user_id`` is the caller: a creator manages only their own ``what``."""
    if user_id != caller.user_id:
        raise PermissionDenied(f"you can only manage your own {what}", code="forbidden")


async def require_club_owner(
    sessions: async_sessionmaker[AsyncSession], caller: AccessClaims, club_id: uuid.UUID, what: str
) -> Club:
    """The club, if it exists (404) and the caller owns it (403 ``not_club_owner``)."""
    async with sessions() as session:
        club = await session.get(Club, club_id)
    if club is None or club.deleted_at is not None:
        raise NotFound("no such club", code="club_not_found")
    if club.owner_id != caller.user_id:
        raise PermissionDenied(f"only the club's owner can manage its {what}", code="not_club_owner")
    return club
