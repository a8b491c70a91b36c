"""Profiles: read one's own, read another's, change one's own (or any, as an admin)."""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Iterable

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.db.fastread import FastReads
from shared.domain.auth.tokens import AccessClaims
from shared.domain.clubs.models import Club, ClubMembership, MembershipStatus
from shared.domain.discovery.icebreakers import prompt_exists
from shared.domain.gamification.services import badges_summary
from shared.domain.media.models import Purpose
from shared.domain.media.services import MediaService
from shared.domain.social.services import has_blocked
from shared.domain.users.models import Role, User
from shared.domain.users.schemas import BadgeSummary, OwnProfile, ProfileUpdate, PublicProfile
from shared.errors import FieldError, InvalidInput, NotFound, PermissionDenied


def normalize_interests(raw: Iterable[str]) -> list[str]:
    """Trimmed, lower-cased, de-duplicated interests in the order given."""
    seen: dict[str, None] = {}
    for item in raw:
        value = " ".join(item.split()).lower()
        if value:
            seen.setdefault(value, None)
    return list(seen)


class UserService:
    """Reads and updates profiles; visibility and ownership rules live here."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
        media: MediaService,
        fast: FastReads | None = None,
    ) -> None:
        self._sessions = sessions
        self._reads = reads
        self._media = media
        self._fast = fast

    async def get_own_profile(self, viewer: AccessClaims) -> OwnProfile:
        """The caller's full profile."""
        if self._fast is not None:
            return await self._own_profile_fast(self._fast, viewer.user_id)
        user = await self._load(viewer.user_id)
        return OwnProfile(
            id=ids.encode(ids.Prefix.USER, user.id),
            email=user.email,
            email_verified=user.email_verified_at is not None,
            display_name=user.display_name,
            bio=user.bio,
            city=user.city,
            avatar_url=user.avatar_url,
            interests=user.interests,
            timezone=user.timezone,
            icebreaker_prompt_id=user.icebreaker_prompt_id,
            roles=user.roles,
            status=user.status,
            settings=user.settings,
            badges=await self._badges(user.id),
            premium_tier=user.premium_tier,
            last_active_at=user.last_active_at,
            created_at=user.created_at,
        )

    async def get_public_profile(self, viewer: AccessClaims, user_id: uuid.UUID) -> PublicProfile:
        """Another user's public profile; 404 if there is no such user or they block the viewer."""
        async with self._sessions() as session:
            user = await session.get(User, user_id)
            if user is None or await has_blocked(session, blocker_id=user_id, blocked_id=viewer.user_id):
                raise NotFound("no such user", code="user_not_found")
        return PublicProfile(
            id=ids.encode(ids.Prefix.USER, user.id),
            display_name=user.display_name,
            bio=user.bio,
            city=user.city,
            avatar_url=user.avatar_url,
            interests=user.interests,
            badges=await self._badges(user.id),
            premium_tier=user.premium_tier,
            mutual_clubs=await self._mutual_clubs(viewer.user_id, user_id),
            last_active_at=user.last_active_at,
        )

    async def update_profile(self, actor: AccessClaims, user_id: uuid.UUID, patch: ProfileUpdate) -> None:
        """Apply the fields present in ``patch``; only the user themself or an admin may."""
        if actor.user_id != user_id and Role.ADMIN.value not in actor.roles:
            async with self._sessions() as session:
                exists = await session.scalar(select(User.id).where(User.id == user_id))
            if exists is None:
                raise NotFound("no such user", code="user_not_found")
            raise PermissionDenied("you may only edit your own profile")
        values = _changes(patch)
        avatar_media = values.pop("avatar_media_id", msgspec.UNSET)
        async with self._sessions.begin() as session:
            target = await session.scalar(select(User.id).where(User.id == user_id).with_for_update())
            if target is None:
                raise NotFound("no such user", code="user_not_found")
            if avatar_media is not msgspec.UNSET:
                assert avatar_media is None or isinstance(avatar_media, uuid.UUID)
                values["avatar_url"] = await self._media.set_avatar(session, user_id, avatar_media)
            elif "avatar_url" in values:
                # An external URL replaces an uploaded avatar, which is then free again.
                await self._media.release_attachment(session, Purpose.AVATAR, user_id)
            prompt = values.get("icebreaker_prompt_id")
            if prompt is not None and not await prompt_exists(session, str(prompt)):
                raise InvalidInput(
                    code="unknown_icebreaker_prompt",
                    errors=[FieldError("icebreaker_prompt_id", "no such icebreaker prompt")],
                )
            if values:
                await session.execute(update(User).where(User.id == user_id).values(**values))

    async def _badges(self, user_id: uuid.UUID) -> list[BadgeSummary]:
        async with self._reads() as session:
            return [BadgeSummary(code=code, earned_at=at) for code, at in await badges_summary(session, user_id)]

    async def _mutual_clubs(self, viewer_id: uuid.UUID, user_id: uuid.UUID) -> list[str]:
        """Clubs both users are active members of; the viewer is one, so each is visible to them."""
        theirs = ClubMembership.__table__.alias("theirs")
        query = (
            select(Club.id)
            .join(ClubMembership, ClubMembership.club_id == Club.id)
            .join(theirs, theirs.c.club_id == Club.id)
            .where(
                Club.deleted_at.is_(None),
                ClubMembership.user_id == viewer_id,
                ClubMembership.status == MembershipStatus.ACTIVE.value,
                theirs.c.user_id == user_id,
                theirs.c.status == MembershipStatus.ACTIVE.value,
            )
            .order_by(Club.id)
        )
        async with self._reads() as session:
            return [ids.encode(ids.Prefix.CLUB, club_id) for club_id in await session.scalars(query)]

    @staticmethod
    async def _own_profile_fast(fast: FastReads, user_id: uuid.UUID) -> OwnProfile:
        """The same profile in one statement on the raw pool (the hot ``GET /v1/users/me``)."""
        row = await fast.fetchrow(_OWN_PROFILE_SQL, user_id)
        if row is None:
            raise NotFound("no such user", code="user_not_found")
        return OwnProfile(
            id=ids.encode(ids.Prefix.USER, row["id"]),
            email=row["email"],
            email_verified=row["email_verified_at"] is not None,
            display_name=row["display_name"],
            bio=row["bio"],
            city=row["city"],
            avatar_url=row["avatar_url"],
            interests=row["interests"],
            timezone=row["timezone"],
            icebreaker_prompt_id=row["icebreaker_prompt_id"],
            roles=row["roles"],
            status=row["status"],
            settings=row["settings"],
            badges=[
                BadgeSummary(code=code, earned_at=at)
                for code, at in zip(row["badge_codes"], row["badge_times"], strict=True)
            ],
            premium_tier=row["premium_tier"],
            last_active_at=row["last_active_at"],
            created_at=row["created_at"],
        )

    async def _load(self, user_id: uuid.UUID) -> User:
        async with self._reads() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise NotFound("no such user", code="user_not_found")
        return user


# The user row and its badges (in badges_summary's order) in one round trip; the
# primary key of user_badges starts with user_id, so both sub-selects are index scans.
_OWN_PROFILE_SQL = """
SELECT u.id, u.email, u.email_verified_at, u.display_name, u.bio, u.city, u.avatar_url, u.interests,
       u.timezone, u.icebreaker_prompt_id, u.roles, u.status, u.settings, u.premium_tier,
       u.last_active_at, u.created_at,
       ARRAY(SELECT b.badge_code FROM user_badges b WHERE b.user_id = u.id
             ORDER BY b.earned_at, b.badge_code) AS badge_codes,
       ARRAY(SELECT b.earned_at FROM user_badges b WHERE b.user_id = u.id
             ORDER BY b.earned_at, b.badge_code) AS badge_times
FROM users u
WHERE u.id = $1
"""


def _changes(patch: ProfileUpdate) -> dict[str, object]:
    """The column values ``patch`` sets, validated and normalised."""
    values: dict[str, object] = {
        field: value for field in patch.__struct_fields__ if (value := getattr(patch, field)) is not msgspec.UNSET
    }
    errors: list[FieldError] = []
    if "display_name" in values:
        name = str(values["display_name"]).strip()
        if not name:
            errors.append(FieldError("display_name", "must not be blank"))
        values["display_name"] = name
    if "interests" in values:
        values["interests"] = normalize_interests(values["interests"])  # type: ignore[arg-type]
    if "city" in values and values["city"] is not None:
        values["city"] = str(values["city"]).strip() or None
    if "avatar_media_id" in values:
        if "avatar_url" in values:
            errors.append(FieldError("avatar_media_id", "give avatar_url or avatar_media_id, not both"))
        raw = values["avatar_media_id"]
        if raw is not None:
            try:
                values["avatar_media_id"] = ids.decode(ids.Prefix.MEDIA, str(raw))
            except ids.InvalidId:
                errors.append(FieldError("avatar_media_id", "not a med_ id"))
    if "timezone" in values:
        try:
            zoneinfo.ZoneInfo(str(values["timezone"]))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            errors.append(FieldError("timezone", "not an IANA time zone name"))
    if errors:
        raise InvalidInput(errors=errors)
    return values
