"""Clubs, memberships, invitations and spaces: visibility and role rules live here.

Visibility: a deleted club is gone for everyone. Public and private clubs are seen by
anyone signed in (their card); a secret club only by its active members, everyone else
gets 404. Content (member directory, spaces): public clubs show it to everyone but
banned users, private and secret clubs only to active members. Other features reuse these
rules through :func:`readable_club`, :func:`check_can_post`, :func:`can_moderate`,
:func:`content_readable_by` and :func:`active_club_ids`.

``member_count`` moves only in the transaction that moves a membership into or out of
``active``, and every such move is a conditional statement whose row count says whether
it happened, so concurrent joins, approvals and leaves never double count.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import msgspec
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import ColumnElement, Select, and_, delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from shared import bus, ids
from shared.clock import utcnow
from shared.config import Settings
from shared.domain.auth.secrets import hash_secret, new_secret
from shared.domain.auth.tokens import AccessClaims
from shared.domain.chat import rooms
from shared.domain.clubs.models import (
    ROLE_RANK,
    Club,
    ClubInvitation,
    ClubInviteLink,
    ClubKind,
    ClubMembership,
    ClubSpace,
    MemberRole,
    MembershipStatus,
    PostingRights,
    Privacy,
)
from shared.domain.clubs.schemas import (
    ClubCreate,
    ClubDetail,
    ClubSettings,
    ClubSummary,
    ClubUpdate,
    CreatedClub,
    InvitationSent,
    InviteLink,
    InviteLinkCreate,
    JoinResult,
    Member,
    MembershipView,
    MemberStanding,
    MemberUser,
    PendingRequest,
    RequestDecision,
    Space,
    SpaceCreate,
    SpaceUpdate,
)
from shared.domain.media.models import Purpose
from shared.domain.media.services import MediaService, TargetPolicy
from shared.domain.payments.tiers import tier_satisfies
from shared.domain.users.models import User
from shared.domain.users.services import normalize_interests
from shared.errors import Conflict, FieldError, InvalidInput, NotFound, PermissionDenied
from shared.pagination import Page, clamp_limit, decode_cursor, make_page

INVITATION_TTL = timedelta(days=7)
MAX_SPACES_PER_CLUB = 50
_SLUG_ATTEMPTS = 20


class _IdKey(msgspec.Struct, frozen=True):
    """Keyset position: the UUIDv7 of the last row seen."""

    id: uuid.UUID


def slugify(name: str) -> str:
    """A URL slug from a club name: ASCII, lower case, hyphen-separated."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-")
    return slug or "club"


def next_slug(base: str, taken: set[str]) -> str:
    """``base`` if free, else ``base-N`` with the smallest free N from 2."""
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def rank(role: str) -> int:
    """The power of a role."""
    return ROLE_RANK[MemberRole(role)]


def is_active(membership: ClubMembership | None) -> bool:
    """Whether ``membership`` is an active one."""
    return membership is not None and membership.status == MembershipStatus.ACTIVE


def can_see_club(club: Club, membership: ClubMembership | None) -> bool:
    """Whether the club's card is visible (secret clubs: active members only)."""
    if club.deleted_at is not None:
        return False
    return club.privacy_level != Privacy.SECRET or is_active(membership)


def check_content_access(club: Club, membership: ClubMembership | None) -> None:
    """Raise unless the viewer may read the club's content (members, spaces, later posts)."""
    if not can_see_club(club, membership):
        raise NotFound("no such club", code="club_not_found")
    if membership is not None and membership.status == MembershipStatus.BANNED:
        raise PermissionDenied("you are banned from this club", code="banned")
    if club.privacy_level != Privacy.PUBLIC and not is_active(membership):
        raise PermissionDenied("only members can see this club's content", code="members_only")


async def readable_club(
    session: AsyncSession, club_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Club, ClubMembership | None]:
    """The club and the reader's membership, for other features' content (posts); 404/403 as for members and spaces."""
    club = await session.get(Club, club_id)
    if club is None:
        raise NotFound("no such club", code="club_not_found")
    membership = await _membership(session, club_id, user_id)
    check_content_access(club, membership)
    return club, membership


def check_can_post(club: Club, membership: ClubMembership | None, space: ClubSpace | None) -> None:
    """Raise unless the member may post in the club (or in ``space``, whose own rights then apply)."""
    if not is_active(membership) or membership is None:
        raise PermissionDenied("only members can post in this club", code="members_only")
    rights = space.who_can_post if space is not None else club.who_can_post
    if rights == PostingRights.MODERATORS and rank(membership.role) < ROLE_RANK[MemberRole.MODERATOR]:
        raise PermissionDenied("only moderators can post here", code="posting_restricted")


def can_moderate(membership: ClubMembership | None) -> bool:
    """Whether the membership is an active moderator, admin or owner (may remove and pin posts)."""
    return is_active(membership) and membership is not None and rank(membership.role) >= ROLE_RANK[MemberRole.MODERATOR]


def content_readable_by(
    user_id: uuid.UUID, club_id: ColumnElement[uuid.UUID] | InstrumentedAttribute[uuid.UUID | None]
) -> ColumnElement[bool]:
    """SQL twin of :func:`check_content_access`: the club in column ``club_id`` shows its content to the user."""
    mine = (
        select(ClubMembership.status)
        .where(ClubMembership.club_id == Club.id, ClubMembership.user_id == user_id)
        .scalar_subquery()
    )
    return exists().where(
        Club.id == club_id,
        Club.deleted_at.is_(None),
        or_(
            mine == MembershipStatus.ACTIVE.value,
            and_(Club.privacy_level == Privacy.PUBLIC.value, func.coalesce(mine, "") != MembershipStatus.BANNED.value),
        ),
    )


def active_club_ids(user_id: uuid.UUID) -> Select[uuid.UUID]:
    """The clubs (not deleted) the user is an active member of, as a subquery for feeds."""
    return (
        select(ClubMembership.club_id)
        .join(Club, Club.id == ClubMembership.club_id)
        .where(
            ClubMembership.user_id == user_id,
            ClubMembership.status == MembershipStatus.ACTIVE.value,
            Club.deleted_at.is_(None),
        )
    )


class ClubService:
    """Every club verb; each is one transaction."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = utcnow,
        *,
        media: MediaService | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._clock = clock
        # Club images (uploads for a club, avatar/cover attachment) need the media service.
        self._media = media
        if media is not None:
            media.register_target(Purpose.CLUB, self._media_target_check)

    # ---- clubs -------------------------------------------------------------------------

    async def create_club(self, actor: AccessClaims, data: ClubCreate) -> CreatedClub:
        """Create a club owned by the caller; a taken slug gets the next free ``-N`` suffix."""
        name = data.name.strip()
        errors: list[FieldError] = []
        if not name:
            errors.append(FieldError("name", "must not be blank"))
        if data.kind == ClubKind.CIRCLE.value and data.privacy_level != Privacy.SECRET.value:
            errors.append(FieldError("privacy_level", "circles are always secret"))
        if errors:
            raise InvalidInput(errors=errors)
        now = self._clock()
        base = slugify(name)
        async with self._sessions.begin() as session:
            club = await self._insert_with_free_slug(session, base, actor.user_id, data, name, now)
            session.add(
                ClubMembership(
                    id=ids.uuid7(),
                    club_id=club.id,
                    user_id=actor.user_id,
                    role=MemberRole.OWNER.value,
                    status=MembershipStatus.ACTIVE.value,
                    joined_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.flush()
            await bus.record(session, bus.ClubCreated(club_id=club.id, owner_id=actor.user_id, kind=club.kind))
            await rooms.open_club_room(session, club.id, actor.user_id, name)
        return CreatedClub(id=ids.encode(ids.Prefix.CLUB, club.id), slug=club.slug)

    async def _insert_with_free_slug(
        self, session: AsyncSession, base: str, owner_id: uuid.UUID, data: ClubCreate, name: str, now: datetime
    ) -> Club:
        for _ in range(_SLUG_ATTEMPTS):
            taken = set(
                await session.scalars(select(Club.slug).where(or_(Club.slug == base, Club.slug.like(f"{base}-%"))))
            )
            club = Club(
                id=ids.uuid7(),
                kind=data.kind,
                name=name,
                slug=next_slug(base, taken),
                description=_blank_to_none(data.description),
                city=_blank_to_none(data.city),
                tags=normalize_interests(data.tags),
                privacy_level=data.privacy_level,
                owner_id=owner_id,
                avatar_url=data.avatar_url,
                cover_url=data.cover_url,
                join_approval=data.settings.join_approval,
                who_can_post=data.settings.who_can_post,
                member_count=1,
                created_at=now,
                updated_at=now,
            )
            try:
                # The unique constraint is the arbiter between concurrent creators of one name.
                async with session.begin_nested():
                    session.add(club)
                    await session.flush()
            except IntegrityError as exc:
                if "uq_clubs_slug" not in str(exc.orig):
                    raise
                continue
            return club
        raise Conflict("could not find a free slug for this name; try again", code="slug_unavailable")

    async def get_club(self, actor: AccessClaims, club_id: uuid.UUID) -> ClubDetail:
        """A club and the caller's membership; 404 when not visible."""
        async with self._sessions() as session:
            club, membership = await self._visible(session, club_id, actor.user_id)
            tier = await _premium_tier(session, actor.user_id)
        return _detail(club, membership, tier)

    async def update_club(self, actor: AccessClaims, club_id: uuid.UUID, patch: ClubUpdate) -> ClubDetail:
        """Change club fields; owner or admin only."""
        values: dict[str, object] = {}
        errors: list[FieldError] = []
        for field in ("description", "city", "avatar_url", "cover_url"):
            if (value := getattr(patch, field)) is not msgspec.UNSET:
                values[field] = _blank_to_none(value) if field in ("description", "city") else value
        if patch.name is not msgspec.UNSET:
            values["name"] = patch.name.strip()
            if not values["name"]:
                errors.append(FieldError("name", "must not be blank"))
        if patch.tags is not msgspec.UNSET:
            values["tags"] = normalize_interests(patch.tags)
        if patch.privacy_level is not msgspec.UNSET:
            values["privacy_level"] = patch.privacy_level
        if patch.settings is not msgspec.UNSET:
            if patch.settings.join_approval is not msgspec.UNSET:
                values["join_approval"] = patch.settings.join_approval
            if patch.settings.who_can_post is not msgspec.UNSET:
                values["who_can_post"] = patch.settings.who_can_post
        if patch.required_tier is not msgspec.UNSET:
            values["required_tier"] = patch.required_tier
        images = _image_changes(patch, errors)
        for slot in ("avatar", "cover"):
            if f"{slot}_url" in values and slot not in images:
                # An external URL replaces an uploaded image, which is then free again.
                values[f"{slot}_media_id"] = None
        async with self._sessions.begin() as session:
            club, membership = await self._visible(session, club_id, actor.user_id)
            _require_rank(membership, MemberRole.ADMIN)
            # An external URL only needs the media service to free an upload it replaces.
            replaced = self._media is not None and any(f"{slot}_url" in values for slot in ("avatar", "cover"))
            if (images or replaced) and not errors:
                values |= await self._attach_images(session, actor.user_id, club_id, images, values)
            if club.kind == ClubKind.CIRCLE and values.get("privacy_level", Privacy.SECRET) != Privacy.SECRET:
                errors.append(FieldError("privacy_level", "circles are always secret"))
            if errors:
                raise InvalidInput(errors=errors)
            if values:
                await session.execute(update(Club).where(Club.id == club_id).values(**values))
            await session.refresh(club)
            return _detail(club, membership, await _premium_tier(session, actor.user_id))

    async def _attach_images(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        club_id: uuid.UUID,
        images: dict[str, uuid.UUID | None],
        values: dict[str, object],
    ) -> dict[str, object]:
        """Claim the new avatar/cover uploads and free the ones they replace; the column values to set."""
        if self._media is None:
            raise InvalidInput("club images are not available", code="purpose_unavailable")
        # The row lock makes concurrent image changes of one club serial, so what stays attached is what is shown.
        current = (
            await session.execute(
                select(Club.avatar_media_id, Club.cover_media_id).where(Club.id == club_id).with_for_update()
            )
        ).one()
        kept: dict[str, uuid.UUID | None] = {"avatar": current.avatar_media_id, "cover": current.cover_media_id}
        out: dict[str, object] = {}
        for slot in ("avatar", "cover"):
            if f"{slot}_media_id" in values:
                kept[slot] = None
        for slot, media_id in images.items():
            kept[slot] = media_id
            out[f"{slot}_media_id"] = media_id
            out[f"{slot}_url"] = None
            if media_id is not None:
                await self._media.claim_for_attachment(session, user_id, [media_id], Purpose.CLUB, club_id)
                out[f"{slot}_url"] = self._media.public_url(media_id, _IMAGE_VARIANT[slot])
        await self._media.release_attachment(
            session, Purpose.CLUB, club_id, keep=[m for m in kept.values() if m is not None]
        )
        return out

    async def _media_target_check(
        self, session: AsyncSession, caller_id: uuid.UUID, club_id: uuid.UUID
    ) -> TargetPolicy:
        """Media service hook: a club's owners and admins may upload its images; 404 when the club is hidden."""
        _, membership = await self._visible(session, club_id, caller_id)
        if not is_active(membership) or membership is None or rank(membership.role) < ROLE_RANK[MemberRole.ADMIN]:
            raise PermissionDenied("only the club's owners and admins can upload its images", code="not_club_admin")
        return TargetPolicy()

    async def delete_club(self, actor: AccessClaims, club_id: uuid.UUID) -> None:
        """Soft-delete a club; owner only. Its slug stays reserved."""
        async with self._sessions.begin() as session:
            _, membership = await self._visible(session, club_id, actor.user_id)
            _require_rank(membership, MemberRole.OWNER)
            await session.execute(
                update(Club).where(Club.id == club_id, Club.deleted_at.is_(None)).values(deleted_at=self._clock())
            )
            await rooms.close_club_room(session, club_id)

    async def list_clubs(
        self,
        actor: AccessClaims,
        *,
        city: str | None,
        tag: str | None,
        q: str | None,
        kind: str | None,
        cursor: str | None,
        limit: int | None,
    ) -> Page[ClubSummary]:
        """Public and private clubs, plus secret ones the caller is an active member of; newest first."""
        size = clamp_limit(limit)
        if kind is not None and kind not in {k.value for k in ClubKind}:
            raise InvalidInput(errors=[FieldError("kind", f"must be one of {', '.join(k.value for k in ClubKind)}")])
        is_member = exists().where(
            ClubMembership.club_id == Club.id,
            ClubMembership.user_id == actor.user_id,
            ClubMembership.status == MembershipStatus.ACTIVE.value,
        )
        conditions: list[ColumnElement[bool]] = [
            Club.deleted_at.is_(None),
            or_(Club.privacy_level != Privacy.SECRET.value, is_member),
        ]
        if city and city.strip():
            conditions.append(func.lower(Club.city) == city.strip().lower())
        if tag and (tags := normalize_interests([tag])):
            conditions.append(Club.tags.contains(tags))
        if q and q.strip():
            pattern = f"%{_escape_like(q.strip())}%"
            conditions.append(or_(Club.name.ilike(pattern, escape="\\"), Club.description.ilike(pattern, escape="\\")))
        if kind is not None:
            conditions.append(Club.kind == kind)
        if cursor is not None:
            conditions.append(Club.id < decode_cursor(cursor, _IdKey).id)
        async with self._sessions() as session:
            rows = list(await session.scalars(select(Club).where(*conditions).order_by(Club.id.desc()).limit(size + 1)))
            tier = await _premium_tier(session, actor.user_id)
            gated = [c.id for c in rows if c.required_tier is not None]
            joined = (
                set(
                    await session.scalars(
                        select(ClubMembership.club_id).where(
                            ClubMembership.club_id.in_(gated),
                            ClubMembership.user_id == actor.user_id,
                            ClubMembership.status == MembershipStatus.ACTIVE.value,
                        )
                    )
                )
                if gated
                else set()
            )
        page = make_page(rows, size, lambda c: _IdKey(id=c.id))
        return Page(
            items=[_summary(c, locked=_locked(c, tier, c.id in joined)) for c in page.items],
            next_cursor=page.next_cursor,
        )

    # ---- joining and leaving -------------------------------------------------------------

    async def join(self, actor: AccessClaims, club_id: uuid.UUID, message: str | None) -> JoinResult:
        """Join a public club or ask to join a private one; idempotent for existing members."""
        async with self._sessions.begin() as session:
            club, membership = await self._visible(session, club_id, actor.user_id)
            if membership is not None and membership.status == MembershipStatus.BANNED:
                raise PermissionDenied("you are banned from this club", code="banned")
            if membership is None or membership.status != MembershipStatus.ACTIVE:
                await _require_tier(session, club, actor.user_id)
            needs_approval = club.privacy_level == Privacy.PRIVATE or club.join_approval
            wanted = MembershipStatus.PENDING if needs_approval else MembershipStatus.ACTIVE
            status, _ = await self._admit(session, club.id, actor.user_id, wanted, _blank_to_none(message))
        return _join_result(club.id, status)

    async def leave(self, actor: AccessClaims, club_id: uuid.UUID) -> None:
        """Leave a club or withdraw a join request; the owner must transfer ownership first."""
        async with self._sessions.begin() as session:
            club, membership = await self._visible_or_pending(session, club_id, actor.user_id)
            if membership is None:
                raise NotFound("you are not a member of this club", code="not_a_member")
            if membership.status == MembershipStatus.BANNED:
                raise PermissionDenied("you are banned from this club", code="banned")
            if membership.role == MemberRole.OWNER:
                raise Conflict("transfer ownership before leaving", code="owner_must_transfer")
            await self._drop(session, club.id, actor.user_id, (MembershipStatus.ACTIVE, MembershipStatus.PENDING))

    async def list_requests(
        self, actor: AccessClaims, club_id: uuid.UUID, cursor: str | None, limit: int | None
    ) -> Page[PendingRequest]:
        """Join requests waiting for a decision, oldest first; moderators and up."""
        size = clamp_limit(limit)
        conditions: list[ColumnElement[bool]] = [
            ClubMembership.club_id == club_id,
            ClubMembership.status == MembershipStatus.PENDING.value,
        ]
        if cursor is not None:
            conditions.append(ClubMembership.id > decode_cursor(cursor, _IdKey).id)
        async with self._sessions() as session:
            _, membership = await self._visible(session, club_id, actor.user_id)
            _require_rank(membership, MemberRole.MODERATOR)
            page = await _membership_page(session, conditions, size)
        return Page(
            items=[
                PendingRequest(user=_member_user(u), message=m.message, requested_at=m.created_at)
                for m, u in page.items
            ],
            next_cursor=page.next_cursor,
        )

    async def decide_request(
        self, actor: AccessClaims, club_id: uuid.UUID, user_id: uuid.UUID, *, approve: bool
    ) -> RequestDecision:
        """Approve or reject a join request; repeating an approval has no further effect."""
        async with self._sessions.begin() as session:
            _, membership = await self._visible(session, club_id, actor.user_id)
            _require_rank(membership, MemberRole.MODERATOR)
            if approve:
                # The conditional UPDATE is the arbiter: of concurrent approvals one moves the row.
                moved = await session.scalar(
                    update(ClubMembership)
                    .where(
                        ClubMembership.club_id == club_id,
                        ClubMembership.user_id == user_id,
                        ClubMembership.status == MembershipStatus.PENDING.value,
                    )
                    .values(status=MembershipStatus.ACTIVE.value, joined_at=self._clock())
                    .returning(ClubMembership.id)
                )
                if moved is not None:
                    await self._count_joined(session, club_id, user_id)
                    await bus.record(
                        session, bus.ClubJoinApproved(club_id=club_id, user_id=user_id, approved_by=actor.user_id)
                    )
                    return RequestDecision(status="approved")
                current = await _membership(session, club_id, user_id)
                if is_active(current):
                    return RequestDecision(status="approved")
                raise NotFound("no such join request", code="request_not_found")
            removed = await session.scalar(
                delete(ClubMembership)
                .where(
                    ClubMembership.club_id == club_id,
                    ClubMembership.user_id == user_id,
                    ClubMembership.status == MembershipStatus.PENDING.value,
                )
                .returning(ClubMembership.id)
            )
            if removed is None:
                raise NotFound("no such join request", code="request_not_found")
            return RequestDecision(status="rejected")

    # ---- managing members ---------------------------------------------------------------

    async def list_members(
        self,
        actor: AccessClaims,
        club_id: uuid.UUID,
        *,
        q: str | None,
        role: str | None,
        cursor: str | None,
        limit: int | None,
    ) -> Page[Member]:
        """The member directory: active members in join order, filtered by name and role."""
        size = clamp_limit(limit)
        if role is not None and role not in {r.value for r in MemberRole}:
            raise InvalidInput(errors=[FieldError("role", f"must be one of {', '.join(r.value for r in MemberRole)}")])
        conditions: list[ColumnElement[bool]] = [
            ClubMembership.club_id == club_id,
            ClubMembership.status == MembershipStatus.ACTIVE.value,
        ]
        if role is not None:
            conditions.append(ClubMembership.role == role)
        if q and q.strip():
            conditions.append(User.display_name.ilike(f"%{_escape_like(q.strip())}%", escape="\\"))
        if cursor is not None:
            conditions.append(ClubMembership.id > decode_cursor(cursor, _IdKey).id)
        async with self._sessions() as session:
            club, membership = await self._visible_or_pending(session, club_id, actor.user_id)
            check_content_access(club, membership)
            page = await _membership_page(session, conditions, size)
        return Page(
            items=[
                Member(user=_member_user(u), role=m.role, joined_at=m.joined_at)  # type: ignore[arg-type]
                for m, u in page.items
            ],
            next_cursor=page.next_cursor,
        )

    async def add_member(self, actor: AccessClaims, club_id: uuid.UUID, user_id: uuid.UUID) -> MemberStanding:
        """Add a user to a circle directly; owner or admin only."""
        async with self._sessions.begin() as session:
            club, membership = await self._visible(session, club_id, actor.user_id)
            _require_rank(membership, MemberRole.ADMIN)
            if club.kind != ClubKind.CIRCLE:
                raise Conflict("only circles take members directly; send an invitation", code="not_a_circle")
            await _require_user(session, user_id)
            current = await _membership(session, club_id, user_id)
            if current is not None and current.status == MembershipStatus.BANNED:
                raise Conflict("this user is banned; unban them first", code="user_banned")
            await self._admit(session, club_id, user_id, MembershipStatus.ACTIVE, None)
            added = await _membership(session, club_id, user_id)
            assert added is not None
            return _standing(added)

    async def remove_member(self, actor: AccessClaims, club_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Remove a member or a pending request of a lower role; moderators and up."""
        async with self._sessions.begin() as session:
            _, mine, theirs = await self._actor_and_target(
                session, club_id, actor.user_id, user_id, MemberRole.MODERATOR
            )
            if theirs is None or theirs.status == MembershipStatus.BANNED:
                raise NotFound("no such member", code="member_not_found")
            _require_outranks(mine, theirs)
            await self._drop(session, club_id, user_id, (MembershipStatus.ACTIVE, MembershipStatus.PENDING))

    async def ban(self, actor: AccessClaims, club_id: uuid.UUID, user_id: uuid.UUID) -> MemberStanding:
        """Ban a user of a lower role (or a non-member); they can neither rejoin nor see private content."""
        async with self._sessions.begin() as session:
            _, mine, theirs = await self._actor_and_target(
                session, club_id, actor.user_id, user_id, MemberRole.MODERATOR
            )
            if theirs is None:
                await _require_user(session, user_id)
                inserted = await session.scalar(
                    insert(ClubMembership)
                    .values(
                        id=ids.uuid7(),
                        club_id=club_id,
                        user_id=user_id,
                        role=MemberRole.MEMBER.value,
                        status=MembershipStatus.BANNED.value,
                    )
                    .on_conflict_do_nothing(index_elements=["club_id", "user_id"])
                    .returning(ClubMembership.id)
                )
                if inserted is None:
                    # Someone joined between our read and our insert: decide again on the fresh row.
                    theirs = await _membership(session, club_id, user_id, lock=True)
            if theirs is not None:
                _require_outranks(mine, theirs)
                if theirs.status != MembershipStatus.BANNED:
                    was_active = theirs.status == MembershipStatus.ACTIVE
                    await session.execute(
                        update(ClubMembership)
                        .where(ClubMembership.id == theirs.id)
                        .values(status=MembershipStatus.BANNED.value, role=MemberRole.MEMBER.value, joined_at=None)
                    )
                    if was_active:
                        await _adjust_count(session, club_id, -1)
                        await rooms.remove_club_member(session, club_id, user_id)
        return MemberStanding(
            user_id=ids.encode(ids.Prefix.USER, user_id), role="member", status=MembershipStatus.BANNED.value
        )

    async def unban(self, actor: AccessClaims, club_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Lift a ban; the user may then join again like anyone else."""
        async with self._sessions.begin() as session:
            _, membership = await self._visible(session, club_id, actor.user_id)
            _require_rank(membership, MemberRole.MODERATOR)
            lifted = await session.scalar(
                delete(ClubMembership)
                .where(
                    ClubMembership.club_id == club_id,
                    ClubMembership.user_id == user_id,
                    ClubMembership.status == MembershipStatus.BANNED.value,
                )
                .returning(ClubMembership.id)
            )
            if lifted is None:
                raise NotFound("this user is not banned here", code="ban_not_found")

    async def change_role(
        self, actor: AccessClaims, club_id: uuid.UUID, user_id: uuid.UUID, role: str
    ) -> MemberStanding:
        """Set an active member's role: owner or admin only, on a lower rank, never above one's own."""
        async with self._sessions.begin() as session:
            _, mine, theirs = await self._actor_and_target(session, club_id, actor.user_id, user_id, MemberRole.ADMIN)
            if theirs is None or theirs.status != MembershipStatus.ACTIVE:
                raise NotFound("no such member", code="member_not_found")
            _require_outranks(mine, theirs)
            if rank(role) > rank(mine.role):
                raise PermissionDenied("you cannot grant a role above your own", code="insufficient_role")
            await session.execute(update(ClubMembership).where(ClubMembership.id == theirs.id).values(role=role))
            theirs.role = role
            return _standing(theirs)

    async def transfer_ownership(self, actor: AccessClaims, club_id: uuid.UUID, user_id: uuid.UUID) -> MemberStanding:
        """Make an active member the owner; the old owner becomes an admin."""
        async with self._sessions.begin() as session:
            _, mine, theirs = await self._actor_and_target(session, club_id, actor.user_id, user_id, MemberRole.OWNER)
            if theirs is None or theirs.status != MembershipStatus.ACTIVE:
                raise Conflict("ownership can only go to an active member", code="not_an_active_member")
            # Demote first: the partial unique index allows one owner per club at any moment.
            await session.execute(
                update(ClubMembership).where(ClubMembership.id == mine.id).values(role=MemberRole.ADMIN.value)
            )
            await session.execute(
                update(ClubMembership).where(ClubMembership.id == theirs.id).values(role=MemberRole.OWNER.value)
            )
            await session.execute(update(Club).where(Club.id == club_id).values(owner_id=user_id))
            theirs.role = MemberRole.OWNER.value
            return _standing(theirs)

    # ---- invitations ---------------------------------------------------------------------

    async def invite_by_email(self, actor: AccessClaims, club_id: uuid.UUID, raw_email: str) -> InvitationSent:
        """Mail a single-use, expiring invitation link; moderators and up."""
        email = _valid_email(raw_email)
        now = self._clock()
        async with self._sessions.begin() as session:
            club, membership = await self._visible(session, club_id, actor.user_id)
            _require_rank(membership, MemberRole.MODERATOR)
            invitee = await session.scalar(
                select(ClubMembership.status)
                .join(User, User.id == ClubMembership.user_id)
                .where(ClubMembership.club_id == club_id, User.email == email)
            )
            if invitee == MembershipStatus.ACTIVE:
                raise Conflict("this person is already a member", code="already_member")
            if invitee == MembershipStatus.BANNED:
                raise Conflict("this person is banned; unban them first", code="user_banned")
            inviter = await session.scalar(select(User.display_name).where(User.id == actor.user_id))
            raw, token_hash = new_secret("ci")
            expires_at = now + INVITATION_TTL
            session.add(
                ClubInvitation(
                    id=ids.uuid7(),
                    club_id=club_id,
                    email=email,
                    token_hash=token_hash,
                    invited_by=actor.user_id,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            await bus.record(
                session,
                bus.EmailRequested(
                    to=email,
                    subject=f"You're invited to join {club.name} on Tribe",
                    body=_invitation_body(
                        inviter or "Someone", club.name, self._app_url(f"club-invitation?token={raw}"), raw
                    ),
                ),
            )
        return InvitationSent(email=email, expires_at=expires_at)

    async def accept_invitation(self, actor: AccessClaims, raw_token: str) -> JoinResult:
        """Spend an invitation addressed to the caller's email and become an active member."""
        now = self._clock()
        invalid = InvalidInput(
            "the invitation is invalid, expired or already used",
            code="invalid_token",
            errors=[FieldError("token", "invalid, expired or already used")],
        )
        async with self._sessions.begin() as session:
            invitation = await session.scalar(
                select(ClubInvitation).where(ClubInvitation.token_hash == hash_secret(raw_token))
            )
            if invitation is None or invitation.accepted_at is not None or invitation.expires_at <= now:
                raise invalid
            email = await session.scalar(select(User.email).where(User.id == actor.user_id))
            if email != invitation.email:
                raise PermissionDenied(
                    "this invitation was sent to another email address", code="invitation_email_mismatch"
                )
            club = await session.scalar(select(Club).where(Club.id == invitation.club_id, Club.deleted_at.is_(None)))
            if club is None:
                raise NotFound("no such club", code="club_not_found")
            await _require_tier(session, club, actor.user_id)
            spent = await session.scalar(
                update(ClubInvitation)
                .where(ClubInvitation.id == invitation.id, ClubInvitation.accepted_at.is_(None))
                .values(accepted_at=now, accepted_by=actor.user_id)
                .returning(ClubInvitation.id)
            )
            if spent is None:
                raise invalid
            status, _ = await self._admit(session, club.id, actor.user_id, MembershipStatus.ACTIVE, None)
        return _join_result(club.id, status)

    async def create_invite_link(self, actor: AccessClaims, club_id: uuid.UUID, data: InviteLinkCreate) -> InviteLink:
        """A shareable join link with an expiry and an optional use limit; owner or admin."""
        now = self._clock()
        code = secrets.token_urlsafe(16)
        expires_at = now + timedelta(hours=data.expires_in_hours)
        async with self._sessions.begin() as session:
            _, membership = await self._visible(session, club_id, actor.user_id)
            _require_rank(membership, MemberRole.ADMIN)
            session.add(
                ClubInviteLink(
                    id=ids.uuid7(),
                    club_id=club_id,
                    code_hash=hash_secret(code),
                    created_by=actor.user_id,
                    created_at=now,
                    expires_at=expires_at,
                    max_uses=data.max_uses,
                    use_count=0,
                )
            )
        return InviteLink(code=code, url=self._app_url(f"join/{code}"), expires_at=expires_at, max_uses=data.max_uses)

    async def join_by_link(self, actor: AccessClaims, code: str) -> JoinResult:
        """Join through a shareable link; a use is spent only when it admits someone new."""
        now = self._clock()
        async with self._sessions.begin() as session:
            link = await session.scalar(select(ClubInviteLink).where(ClubInviteLink.code_hash == hash_secret(code)))
            club = None
            if link is not None:
                club = await session.scalar(select(Club).where(Club.id == link.club_id, Club.deleted_at.is_(None)))
            if link is None or club is None:
                raise NotFound("no such invite link", code="invite_not_found")
            if link.expires_at <= now:
                raise Conflict("this invite link has expired", code="invite_expired")
            await _require_tier(session, club, actor.user_id)
            status, admitted = await self._admit(session, club.id, actor.user_id, MembershipStatus.ACTIVE, None)
            if admitted:
                # The conditional UPDATE counts uses under the link's row lock; a loser rolls back its admission.
                spent = await session.scalar(
                    update(ClubInviteLink)
                    .where(
                        ClubInviteLink.id == link.id,
                        ClubInviteLink.expires_at > now,
                        or_(ClubInviteLink.max_uses.is_(None), ClubInviteLink.use_count < ClubInviteLink.max_uses),
                    )
                    .values(use_count=ClubInviteLink.use_count + 1)
                    .returning(ClubInviteLink.id)
                )
                if spent is None:
                    raise Conflict("this invite link has been used up", code="invite_exhausted")
        return _join_result(club.id, status)

    # ---- spaces --------------------------------------------------------------------------

    async def list_spaces(self, actor: AccessClaims, club_id: uuid.UUID) -> Page[Space]:
        """Every space of a club in order (at most 50, so one page)."""
        async with self._sessions() as session:
            club, membership = await self._visible(session, club_id, actor.user_id)
            if membership is not None and membership.status == MembershipStatus.BANNED:
                raise PermissionDenied("you are banned from this club", code="banned")
            spaces = list(
                await session.scalars(
                    select(ClubSpace).where(ClubSpace.club_id == club.id).order_by(ClubSpace.position)
                )
            )
        return Page(items=[_space(s) for s in spaces], next_cursor=None)

    async def create_space(self, actor: AccessClaims, club_id: uuid.UUID, data: SpaceCreate) -> Space:
        """Add a space at a position (default last); owner or admin."""
        name = data.name.strip()
        if not name:
            raise InvalidInput(errors=[FieldError("name", "must not be blank")])
        now = self._clock()
        async with self._sessions.begin() as session:
            spaces = await self._lock_spaces(session, club_id, actor.user_id)
            if len(spaces) >= MAX_SPACES_PER_CLUB:
                raise Conflict(f"a club has at most {MAX_SPACES_PER_CLUB} spaces", code="too_many_spaces")
            if any(s.name == name for s in spaces):
                raise Conflict("a space with this name exists", code="space_name_taken")
            space = ClubSpace(
                id=ids.uuid7(),
                club_id=club_id,
                name=name,
                kind=data.kind,
                description=_blank_to_none(data.description),
                who_can_post=data.who_can_post,
                position=len(spaces),
                created_at=now,
                updated_at=now,
            )
            session.add(space)
            position = len(spaces) if data.position is None else data.position
            _renumber(spaces, space, position)
            await session.flush()
            await session.refresh(space)
            return _space(space)

    async def update_space(
        self, actor: AccessClaims, club_id: uuid.UUID, space_id: uuid.UUID, patch: SpaceUpdate
    ) -> Space:
        """Rename, retype, change posting rights or move a space; owner or admin."""
        async with self._sessions.begin() as session:
            spaces = await self._lock_spaces(session, club_id, actor.user_id)
            space = next((s for s in spaces if s.id == space_id), None)
            if space is None:
                raise NotFound("no such space", code="space_not_found")
            if patch.name is not msgspec.UNSET:
                name = patch.name.strip()
                if not name:
                    raise InvalidInput(errors=[FieldError("name", "must not be blank")])
                if any(s.name == name and s.id != space.id for s in spaces):
                    raise Conflict("a space with this name exists", code="space_name_taken")
                space.name = name
            if patch.kind is not msgspec.UNSET:
                space.kind = patch.kind
            if patch.description is not msgspec.UNSET:
                space.description = _blank_to_none(patch.description)
            if patch.who_can_post is not msgspec.UNSET:
                space.who_can_post = patch.who_can_post
            if patch.position is not msgspec.UNSET:
                spaces.remove(space)
                _renumber(spaces, space, patch.position)
            await session.flush()
            await session.refresh(space)
            return _space(space)

    async def delete_space(self, actor: AccessClaims, club_id: uuid.UUID, space_id: uuid.UUID) -> None:
        """Remove a space and close the gap in the order; owner or admin."""
        async with self._sessions.begin() as session:
            spaces = await self._lock_spaces(session, club_id, actor.user_id)
            space = next((s for s in spaces if s.id == space_id), None)
            if space is None:
                raise NotFound("no such space", code="space_not_found")
            await session.delete(space)
            spaces.remove(space)
            for index, other in enumerate(spaces):
                if other.position != index:
                    other.position = index

    async def _lock_spaces(self, session: AsyncSession, club_id: uuid.UUID, user_id: uuid.UUID) -> list[ClubSpace]:
        """Check the caller may manage spaces and serialise space changes on the club row."""
        _, membership = await self._visible(session, club_id, user_id)
        _require_rank(membership, MemberRole.ADMIN)
        await session.execute(select(Club.id).where(Club.id == club_id).with_for_update(key_share=True))
        return list(
            await session.scalars(select(ClubSpace).where(ClubSpace.club_id == club_id).order_by(ClubSpace.position))
        )

    # ---- shared steps --------------------------------------------------------------------

    async def _visible(
        self, session: AsyncSession, club_id: uuid.UUID, user_id: uuid.UUID
    ) -> tuple[Club, ClubMembership | None]:
        """The club and the caller's membership; 404 unless the caller can see the club."""
        club = await session.get(Club, club_id)
        membership = await _membership(session, club_id, user_id) if club is not None else None
        if club is None or not can_see_club(club, membership):
            raise NotFound("no such club", code="club_not_found")
        return club, membership

    async def _visible_or_pending(
        self, session: AsyncSession, club_id: uuid.UUID, user_id: uuid.UUID
    ) -> tuple[Club, ClubMembership | None]:
        """Like :meth:`_visible`, but a secret club's pending or banned user still finds their own row."""
        club = await session.get(Club, club_id)
        if club is None or club.deleted_at is not None:
            raise NotFound("no such club", code="club_not_found")
        membership = await _membership(session, club_id, user_id)
        if club.privacy_level == Privacy.SECRET and membership is None:
            raise NotFound("no such club", code="club_not_found")
        return club, membership

    async def _actor_and_target(
        self,
        session: AsyncSession,
        club_id: uuid.UUID,
        actor_id: uuid.UUID,
        target_id: uuid.UUID,
        minimum: MemberRole,
    ) -> tuple[Club, ClubMembership, ClubMembership | None]:
        """Lock both memberships (in user id order, so two managers never deadlock) and check the actor's rank."""
        club, _ = await self._visible(session, club_id, actor_id)
        rows = {
            m.user_id: m
            for m in await session.scalars(
                select(ClubMembership)
                .where(ClubMembership.club_id == club_id, ClubMembership.user_id.in_([actor_id, target_id]))
                .order_by(ClubMembership.user_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        }
        mine = rows.get(actor_id)
        _require_rank(mine, minimum)
        assert mine is not None
        if target_id == actor_id:
            raise PermissionDenied("you cannot do this to yourself", code="cannot_target_self")
        return club, mine, rows.get(target_id)

    async def _admit(
        self,
        session: AsyncSession,
        club_id: uuid.UUID,
        user_id: uuid.UUID,
        wanted: MembershipStatus,
        message: str | None,
    ) -> tuple[MembershipStatus, bool]:
        """Create or upgrade the user's membership; the status it ends in and whether it changed."""
        now = self._clock()
        active = wanted == MembershipStatus.ACTIVE
        inserted = await session.scalar(
            insert(ClubMembership)
            .values(
                id=ids.uuid7(),
                club_id=club_id,
                user_id=user_id,
                role=MemberRole.MEMBER.value,
                status=wanted.value,
                message=message,
                joined_at=now if active else None,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["club_id", "user_id"])
            .returning(ClubMembership.id)
        )
        if inserted is not None:
            if active:
                await self._count_joined(session, club_id, user_id)
            return wanted, True
        current = await _membership(session, club_id, user_id, lock=True)
        assert current is not None
        status = MembershipStatus(current.status)
        if status == MembershipStatus.BANNED:
            raise PermissionDenied("you are banned from this club", code="banned")
        if status == MembershipStatus.PENDING and active:
            await session.execute(
                update(ClubMembership)
                .where(ClubMembership.id == current.id)
                .values(status=MembershipStatus.ACTIVE.value, joined_at=now)
            )
            await self._count_joined(session, club_id, user_id)
            return MembershipStatus.ACTIVE, True
        return status, False

    async def _drop(
        self, session: AsyncSession, club_id: uuid.UUID, user_id: uuid.UUID, statuses: Sequence[MembershipStatus]
    ) -> None:
        """Delete a membership in one of ``statuses``; decrement the count if it was active."""
        gone = await session.scalar(
            delete(ClubMembership)
            .where(
                ClubMembership.club_id == club_id,
                ClubMembership.user_id == user_id,
                ClubMembership.status.in_([s.value for s in statuses]),
            )
            .returning(ClubMembership.status)
        )
        if gone is None:
            raise NotFound("no such member", code="member_not_found")
        if gone == MembershipStatus.ACTIVE:
            await _adjust_count(session, club_id, -1)
            await rooms.remove_club_member(session, club_id, user_id)

    async def _count_joined(self, session: AsyncSession, club_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await _adjust_count(session, club_id, 1)
        await bus.record(session, bus.ClubMemberJoined(club_id=club_id, user_id=user_id))
        await rooms.add_club_member(session, club_id, user_id)

    def _app_url(self, path: str) -> str:
        return f"{self._settings.public_app_url.rstrip('/')}/{path}"


async def _membership(
    session: AsyncSession, club_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
) -> ClubMembership | None:
    query = select(ClubMembership).where(ClubMembership.club_id == club_id, ClubMembership.user_id == user_id)
    if lock:
        query = query.with_for_update()
    return await session.scalar(query.execution_options(populate_existing=True))


async def _adjust_count(session: AsyncSession, club_id: uuid.UUID, delta: int) -> None:
    # ``updated_at`` is pinned: joins are not edits of the club.
    await session.execute(
        update(Club)
        .where(Club.id == club_id)
        .values(member_count=Club.member_count + delta, updated_at=Club.updated_at)
    )


async def _require_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    if await session.scalar(select(User.id).where(User.id == user_id)) is None:
        raise NotFound("no such user", code="user_not_found")


_IMAGE_VARIANT = {"avatar": "w256", "cover": "w1024"}


def _image_changes(patch: ClubUpdate, errors: list[FieldError]) -> dict[str, uuid.UUID | None]:
    """The avatar/cover upload ids a patch sets (``None`` clears), validated into ``errors``."""
    images: dict[str, uuid.UUID | None] = {}
    for slot in ("avatar", "cover"):
        raw = getattr(patch, f"{slot}_media_id")
        if raw is msgspec.UNSET:
            continue
        if getattr(patch, f"{slot}_url") is not msgspec.UNSET:
            errors.append(FieldError(f"{slot}_media_id", f"give {slot}_url or {slot}_media_id, not both"))
            continue
        try:
            images[slot] = None if raw is None else ids.decode(ids.Prefix.MEDIA, raw)
        except ids.InvalidId:
            errors.append(FieldError(f"{slot}_media_id", "not a med_ id"))
    return images


def _require_rank(membership: ClubMembership | None, minimum: MemberRole) -> None:
    if not is_active(membership) or membership is None or rank(membership.role) < ROLE_RANK[minimum]:
        raise PermissionDenied(f"this needs the {minimum.value} role or higher", code="insufficient_role")


def _require_outranks(mine: ClubMembership, theirs: ClubMembership) -> None:
    if rank(theirs.role) >= rank(mine.role):
        raise PermissionDenied("you can only act on members below your own role", code="insufficient_role")


def _renumber(spaces: list[ClubSpace], moved: ClubSpace, position: int) -> None:
    spaces.insert(min(position, len(spaces)), moved)
    for index, space in enumerate(spaces):
        if space.position != index:
            space.position = index


def _valid_email(raw: str) -> str:
    try:
        info = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(errors=[FieldError("email", str(exc))]) from None
    return info.normalized.lower()


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _blank_to_none(value: str | None) -> str | None:
    return (value or "").strip() or None


def _join_result(club_id: uuid.UUID, status: MembershipStatus) -> JoinResult:
    return JoinResult(
        status="approved" if status == MembershipStatus.ACTIVE else "pending",
        club_id=ids.encode(ids.Prefix.CLUB, club_id),
    )


def _member_user(user: User) -> MemberUser:
    return MemberUser(
        id=ids.encode(ids.Prefix.USER, user.id), display_name=user.display_name, avatar_url=user.avatar_url
    )


def _standing(membership: ClubMembership) -> MemberStanding:
    return MemberStanding(
        user_id=ids.encode(ids.Prefix.USER, membership.user_id),
        role=membership.role,  # type: ignore[arg-type]
        status=membership.status,  # type: ignore[arg-type]
    )


async def _premium_tier(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    """The user's premium tier (derived by payments from their subscriptions)."""
    return await session.scalar(select(User.premium_tier).where(User.id == user_id))


async def _require_tier(session: AsyncSession, club: Club, user_id: uuid.UUID) -> None:
    """403 ``premium_required`` unless the user's tier opens this club."""
    if not tier_satisfies(await _premium_tier(session, user_id), club.required_tier):
        raise PermissionDenied(f"this club requires a {club.required_tier} subscription", code="premium_required")


def _locked(club: Club, tier: str | None, active_member: bool) -> bool:
    """Whether the viewer would need a (higher) subscription to join; members already in are not locked out."""
    return not active_member and not tier_satisfies(tier, club.required_tier)


def _detail(club: Club, membership: ClubMembership | None, tier: str | None) -> ClubDetail:
    return ClubDetail(
        id=ids.encode(ids.Prefix.CLUB, club.id),
        kind=club.kind,  # type: ignore[arg-type]
        name=club.name,
        slug=club.slug,
        description=club.description,
        city=club.city,
        tags=club.tags,
        privacy_level=club.privacy_level,  # type: ignore[arg-type]
        owner_id=ids.encode(ids.Prefix.USER, club.owner_id),
        avatar_url=club.avatar_url,
        cover_url=club.cover_url,
        settings=ClubSettings(join_approval=club.join_approval, who_can_post=club.who_can_post),  # type: ignore[arg-type]
        member_count=club.member_count,
        created_at=club.created_at,
        updated_at=club.updated_at,
        membership=(
            MembershipView(role=membership.role, status=membership.status)  # type: ignore[arg-type]
            if membership is not None
            else None
        ),
        required_tier=club.required_tier,  # type: ignore[arg-type]
        locked=_locked(club, tier, membership is not None and membership.status == MembershipStatus.ACTIVE),
    )


def _summary(club: Club, *, locked: bool) -> ClubSummary:
    return ClubSummary(
        id=ids.encode(ids.Prefix.CLUB, club.id),
        kind=club.kind,  # type: ignore[arg-type]
        name=club.name,
        slug=club.slug,
        description=club.description,
        city=club.city,
        tags=club.tags,
        privacy_level=club.privacy_level,  # type: ignore[arg-type]
        avatar_url=club.avatar_url,
        member_count=club.member_count,
        created_at=club.created_at,
        required_tier=club.required_tier,  # type: ignore[arg-type]
        locked=locked,
    )


def _space(space: ClubSpace) -> Space:
    return Space(
        id=ids.encode(ids.Prefix.SPACE, space.id),
        club_id=ids.encode(ids.Prefix.CLUB, space.club_id),
        name=space.name,
        kind=space.kind,  # type: ignore[arg-type]
        description=space.description,
        position=space.position,
        who_can_post=space.who_can_post,  # type: ignore[arg-type]
        created_at=space.created_at,
        updated_at=space.updated_at,
    )


def _invitation_body(inviter: str, club_name: str, link: str, token: str) -> str:
    return (
        f"Hi,\n\n{inviter} invited you to join {club_name} on Tribe. Open this link within "
        f"{INVITATION_TTL.days} days to accept:\n\n{link}\n\nOr enter this code in the app: {token}\n"
    )


async def _membership_page(
    session: AsyncSession, conditions: list[ColumnElement[bool]], size: int
) -> Page[tuple[ClubMembership, User]]:
    """One keyset page of memberships (with their users) matching ``conditions``, in id order."""
    rows = list(
        (
            await session.execute(
                select(ClubMembership, User)
                .join(User, User.id == ClubMembership.user_id)
                .where(*conditions)
                .order_by(ClubMembership.id)
                .limit(size + 1)
            )
        ).tuples()
    )
    return make_page(rows, size, lambda r: _IdKey(id=r[0].id))
