"""The social graph: friend requests and friendships, follows, blocks, vouches and invite codes.

Every write that touches a pair of users first takes a transaction-scoped advisory lock on
the pair, so a block, a friend request in either direction, a follow and a vouch between the
same two people are serialised; unique constraints and partial unique indexes hold the
invariants in the database regardless.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import ColumnElement, and_, exists, func, literal, or_, select, tuple_, union_all, update
from sqlalchemy import delete as sql_delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute, aliased

from shared import bus, ids
from shared.clock import utcnow
from shared.domain.auth.tokens import AccessClaims
from shared.domain.social.models import (
    Block,
    Follow,
    FriendRequest,
    FriendRequestStatus,
    Friendship,
    InviteCode,
    Vouch,
)
from shared.domain.social.schemas import (
    BlockOut,
    ConnectedUser,
    FollowOut,
    FriendRequestCreate,
    FriendRequestOut,
    InviteOut,
    ReceivedVouch,
    RequestDirection,
    UserRef,
    VouchCreate,
    VouchOut,
)
from shared.domain.users.models import AccountStatus, Role, User
from shared.errors import Conflict, FieldError, InvalidInput, NotFound, PermissionDenied
from shared.pagination import Page, clamp_limit, decode_cursor, make_page

# Codes a user may hold that are used or still redeemable; expired unused codes free their slot.
INVITE_QUOTA = 5
INVITE_TTL = timedelta(days=30)
_INVITE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U to misread
_INVITE_LENGTH = 12


# ---------------------------------------------------------------------------
# Block checks other features reuse (chat, feed, search)
# ---------------------------------------------------------------------------

_Column = ColumnElement[uuid.UUID] | InstrumentedAttribute[uuid.UUID]


async def has_blocked(session: AsyncSession, blocker_id: uuid.UUID, blocked_id: uuid.UUID) -> bool:
    """Whether ``blocker_id`` blocks ``blocked_id`` (one direction)."""
    found = await session.scalar(
        select(literal(True)).where(Block.blocker_id == blocker_id, Block.blocked_id == blocked_id)
    )
    return bool(found)


async def is_blocked_between(session: AsyncSession, a: uuid.UUID, b: uuid.UUID) -> bool:
    """Whether either of ``a`` and ``b`` blocks the other."""
    found = await session.scalar(select(literal(True)).where(_block_between(a, b)).limit(1))
    return bool(found)


def not_blocked_with(viewer_id: uuid.UUID, other: _Column) -> ColumnElement[bool]:
    """A SQL condition: no block either way between ``viewer_id`` and the user in column ``other``."""
    return ~exists().where(_block_between(viewer_id, other))


def _block_between(a: uuid.UUID | _Column, b: uuid.UUID | _Column) -> ColumnElement[bool]:
    return or_(
        and_(Block.blocker_id == a, Block.blocked_id == b),
        and_(Block.blocker_id == b, Block.blocked_id == a),
    )


# ---------------------------------------------------------------------------
# Invite redemption (called by sign-up)
# ---------------------------------------------------------------------------


def normalize_invite_code(raw: str) -> str:
    """The stored form of a typed code: upper case, without dashes or spaces."""
    return "".join(ch for ch in raw.upper() if ch not in "- \t")


async def redeem_invite_code(session: AsyncSession, raw_code: str, user_id: uuid.UUID, now: datetime) -> uuid.UUID:
    """Mark the code used by ``user_id`` in the caller's transaction; returns the inviter.

    Raises 422 ``invalid_invite_code`` when the code is unknown, used, expired or its owner suspended.
    """
    # The conditional UPDATE is the race arbiter: of two sign-ups with one code, one gets the row.
    inviter_id: uuid.UUID | None = await session.scalar(
        update(InviteCode)
        .where(
            InviteCode.code == normalize_invite_code(raw_code),
            InviteCode.used_at.is_(None),
            InviteCode.expires_at > now,
            exists().where(User.id == InviteCode.inviter_id, User.status != AccountStatus.SUSPENDED.value),
        )
        .values(used_by_id=user_id, used_at=now)
        .returning(InviteCode.inviter_id)
    )
    if inviter_id is None:
        raise InvalidInput(
            "the invite code is unknown, expired or already used",
            code="invalid_invite_code",
            errors=[FieldError("invite_code", "unknown, expired or already used")],
        )
    return inviter_id


# ---------------------------------------------------------------------------
# Helpers shared by the services below
# ---------------------------------------------------------------------------


class _TimeKey(msgspec.Struct, frozen=True):
    """Keyset of lists ordered by (time, user id) descending."""

    t: datetime
    id: uuid.UUID


class _IdKey(msgspec.Struct, frozen=True):
    """Keyset of lists ordered by a UUIDv7 id descending (time order)."""

    id: uuid.UUID


def _body_user_id(value: str, field: str = "user_id") -> uuid.UUID:
    try:
        return ids.decode(ids.Prefix.USER, value)
    except ids.InvalidId:
        raise InvalidInput(errors=[FieldError(field, "not a valid user id")]) from None


def _not_self(actor: uuid.UUID, target: uuid.UUID, field: str | None, what: str) -> None:
    if actor == target:
        raise InvalidInput(f"you cannot {what} yourself", errors=[FieldError(field or "user_id", "must not be you")])


async def _lock_pair(session: AsyncSession, a: uuid.UUID, b: uuid.UUID) -> None:
    low, high = sorted((a, b))
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"social-pair:{low}:{high}", 0))))


async def _require_visible(session: AsyncSession, viewer: uuid.UUID, target: uuid.UUID) -> None:
    """404 unless ``target`` exists and has not blocked ``viewer``."""
    found = await session.scalar(
        select(User.id).where(
            User.id == target,
            ~exists().where(Block.blocker_id == target, Block.blocked_id == viewer),
        )
    )
    if found is None:
        raise NotFound("no such user", code="user_not_found")


async def _require_reachable(session: AsyncSession, actor: uuid.UUID, target: uuid.UUID) -> None:
    """404 if ``target`` does not exist or blocks ``actor``; 403 ``user_blocked`` if ``actor`` blocks ``target``."""
    await _require_visible(session, actor, target)
    if await has_blocked(session, actor, target):
        raise PermissionDenied("you have blocked this user; unblock them first", code="user_blocked")


def _ref(user: User) -> UserRef:
    return UserRef(id=ids.encode(ids.Prefix.USER, user.id), display_name=user.display_name, avatar_url=user.avatar_url)


def _connected(user: User, since: datetime) -> ConnectedUser:
    return ConnectedUser(
        id=ids.encode(ids.Prefix.USER, user.id), display_name=user.display_name, avatar_url=user.avatar_url, since=since
    )


def _time_key(item: ConnectedUser) -> _TimeKey:
    return _TimeKey(t=item.since, id=ids.decode(ids.Prefix.USER, item.id))


# ---------------------------------------------------------------------------
# Friends, follows and blocks
# ---------------------------------------------------------------------------


class SocialService:
    """Friend requests and friendships, follows and blocks; each verb is one transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    # Friend requests --------------------------------------------------------

    async def request_friend(self, actor: AccessClaims, data: FriendRequestCreate) -> tuple[FriendRequestOut, bool]:
        """Ask ``data.user_id`` to be friends; returns the request and whether it was created.

        An open request from the caller is returned as it is; an open request from the other
        user is accepted instead (status ``accepted``).
        """
        me = actor.user_id
        target = _body_user_id(data.user_id)
        _not_self(me, target, "user_id", "befriend")
        now = self._clock()
        async with self._sessions.begin() as session:
            await _lock_pair(session, me, target)
            await _require_reachable(session, me, target)
            low, high = sorted((me, target))
            if await session.get(Friendship, (low, high)) is not None:
                raise Conflict("you are already friends", code="already_friends")
            pending = await session.scalar(
                select(FriendRequest).where(
                    FriendRequest.status == FriendRequestStatus.PENDING.value,
                    or_(
                        and_(FriendRequest.sender_id == me, FriendRequest.recipient_id == target),
                        and_(FriendRequest.sender_id == target, FriendRequest.recipient_id == me),
                    ),
                )
            )
            if pending is not None and pending.sender_id == me:
                return await self._out(session, pending), False
            if pending is not None:
                await self._accept(session, pending, now)
                return await self._out(session, pending), False
            request = FriendRequest(
                id=ids.uuid7(),
                sender_id=me,
                recipient_id=target,
                status=FriendRequestStatus.PENDING.value,
                created_at=now,
            )
            session.add(request)
            await session.flush()
            await bus.record(session, bus.FriendRequested(request_id=request.id, sender_id=me, recipient_id=target))
            return await self._out(session, request), True

    async def list_requests(
        self, actor: AccessClaims, direction: RequestDirection, cursor: str | None, limit: int | None
    ) -> Page[FriendRequestOut]:
        """The caller's open requests, received (``incoming``) or sent (``outgoing``), newest first."""
        size = clamp_limit(limit)
        mine = FriendRequest.recipient_id if direction == "incoming" else FriendRequest.sender_id
        query = (
            select(FriendRequest)
            .where(mine == actor.user_id, FriendRequest.status == FriendRequestStatus.PENDING.value)
            .order_by(FriendRequest.id.desc())
            .limit(size + 1)
        )
        if cursor is not None:
            query = query.where(FriendRequest.id < decode_cursor(cursor, _IdKey).id)
        async with self._sessions() as session:
            requests = list((await session.scalars(query)).all())
            users = await self._users(session, [u for r in requests for u in (r.sender_id, r.recipient_id)])
        items = [self._render(r, users) for r in requests]
        return make_page(items, size, lambda item: _IdKey(id=ids.decode(ids.Prefix.FRIEND_REQUEST, item.id)))

    async def accept_request(self, actor: AccessClaims, request_id: uuid.UUID) -> FriendRequestOut:
        """Accept a request sent to the caller; 404 for anyone else's, 409 if no longer open."""
        async with self._sessions.begin() as session:
            request = await self._own_request(session, request_id, recipient=actor.user_id)
            await self._accept(session, request, self._clock())
            return await self._out(session, request)

    async def decline_request(self, actor: AccessClaims, request_id: uuid.UUID) -> FriendRequestOut:
        """Decline a request sent to the caller; the sender may ask again later."""
        async with self._sessions.begin() as session:
            request = await self._own_request(session, request_id, recipient=actor.user_id)
            request.status = FriendRequestStatus.DECLINED.value
            request.responded_at = self._clock()
            await session.flush()
            return await self._out(session, request)

    async def cancel_request(self, actor: AccessClaims, request_id: uuid.UUID) -> None:
        """Withdraw a request the caller sent."""
        async with self._sessions.begin() as session:
            request = await self._own_request(session, request_id, sender=actor.user_id)
            request.status = FriendRequestStatus.CANCELLED.value
            request.responded_at = self._clock()

    # Friendships --------------------------------------------------------------

    async def list_friends(self, actor: AccessClaims, cursor: str | None, limit: int | None) -> Page[ConnectedUser]:
        """The caller's friends, most recent friendship first."""
        size = clamp_limit(limit)
        me = actor.user_id
        # One branch per side of the canonical pair, so each uses its own index.
        pairs = union_all(
            select(Friendship.user_high_id.label("friend_id"), Friendship.created_at).where(
                Friendship.user_low_id == me
            ),
            select(Friendship.user_low_id.label("friend_id"), Friendship.created_at).where(
                Friendship.user_high_id == me
            ),
        ).subquery()
        query = (
            select(User, pairs.c.created_at)
            .join(pairs, pairs.c.friend_id == User.id)
            .order_by(pairs.c.created_at.desc(), pairs.c.friend_id.desc())
            .limit(size + 1)
        )
        if cursor is not None:
            key = decode_cursor(cursor, _TimeKey)
            query = query.where(tuple_(pairs.c.created_at, pairs.c.friend_id) < tuple_(key.t, key.id))
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return make_page([_connected(user, since) for user, since in rows], size, _time_key)

    async def unfriend(self, actor: AccessClaims, user_id: uuid.UUID) -> None:
        """End a friendship; 404 ``not_friends`` if there is none."""
        low, high = sorted((actor.user_id, user_id))
        async with self._sessions.begin() as session:
            await _lock_pair(session, low, high)
            gone = await session.scalar(
                sql_delete(Friendship)
                .where(Friendship.user_low_id == low, Friendship.user_high_id == high)
                .returning(Friendship.created_at)
            )
        if gone is None:
            raise NotFound("you are not friends with this user", code="not_friends")

    # Follows ------------------------------------------------------------------

    async def follow(self, actor: AccessClaims, user_id: uuid.UUID) -> tuple[FollowOut, bool]:
        """Follow a user; following again changes nothing. Returns whether the follow is new."""
        me = actor.user_id
        _not_self(me, user_id, None, "follow")
        now = self._clock()
        async with self._sessions.begin() as session:
            await _lock_pair(session, me, user_id)
            await _require_reachable(session, me, user_id)
            created_at = await session.scalar(
                insert(Follow)
                .values(follower_id=me, followee_id=user_id, created_at=now)
                .on_conflict_do_nothing()
                .returning(Follow.created_at)
            )
            if created_at is not None:
                await bus.record(session, bus.UserFollowed(follower_id=me, followee_id=user_id))
                return FollowOut(user_id=ids.encode(ids.Prefix.USER, user_id), following=True, since=now), True
            since = await session.scalar(
                select(Follow.created_at).where(Follow.follower_id == me, Follow.followee_id == user_id)
            )
            assert since is not None  # the conflicting row exists and the pair lock keeps it
            return FollowOut(user_id=ids.encode(ids.Prefix.USER, user_id), following=True, since=since), False

    async def unfollow(self, actor: AccessClaims, user_id: uuid.UUID) -> None:
        """Stop following a user; a no-op if the caller did not follow them."""
        async with self._sessions.begin() as session:
            await session.execute(
                sql_delete(Follow).where(Follow.follower_id == actor.user_id, Follow.followee_id == user_id)
            )

    async def list_followers(
        self, viewer: AccessClaims, user_id: uuid.UUID, cursor: str | None, limit: int | None
    ) -> Page[ConnectedUser]:
        """Who follows ``user_id``, newest first; users in a block with the viewer are left out."""
        return await self._follow_list(viewer, user_id, cursor, limit, followers=True)

    async def list_following(
        self, viewer: AccessClaims, user_id: uuid.UUID, cursor: str | None, limit: int | None
    ) -> Page[ConnectedUser]:
        """Whom ``user_id`` follows, newest first; users in a block with the viewer are left out."""
        return await self._follow_list(viewer, user_id, cursor, limit, followers=False)

    # Blocks -------------------------------------------------------------------

    async def block(self, actor: AccessClaims, user_id: uuid.UUID) -> tuple[BlockOut, bool]:
        """Block a user and, in the same transaction, end every tie between the two."""
        me = actor.user_id
        _not_self(me, user_id, None, "block")
        now = self._clock()
        async with self._sessions.begin() as session:
            await _lock_pair(session, me, user_id)
            if await session.scalar(select(User.id).where(User.id == user_id)) is None:
                raise NotFound("no such user", code="user_not_found")
            created_at = await session.scalar(
                insert(Block)
                .values(blocker_id=me, blocked_id=user_id, created_at=now)
                .on_conflict_do_nothing()
                .returning(Block.created_at)
            )
            if created_at is None:
                since = await session.scalar(
                    select(Block.created_at).where(Block.blocker_id == me, Block.blocked_id == user_id)
                )
                assert since is not None  # the conflicting row exists and the pair lock keeps it
                return BlockOut(user_id=ids.encode(ids.Prefix.USER, user_id), blocked_at=since), False
            await self._sever(session, me, user_id, now)
            return BlockOut(user_id=ids.encode(ids.Prefix.USER, user_id), blocked_at=now), True

    async def unblock(self, actor: AccessClaims, user_id: uuid.UUID) -> None:
        """Lift a block; a no-op if there was none. Severed ties are not restored."""
        async with self._sessions.begin() as session:
            await session.execute(
                sql_delete(Block).where(Block.blocker_id == actor.user_id, Block.blocked_id == user_id)
            )

    async def list_blocks(self, actor: AccessClaims, cursor: str | None, limit: int | None) -> Page[ConnectedUser]:
        """Whom the caller blocks, most recent first."""
        size = clamp_limit(limit)
        query = (
            select(User, Block.created_at)
            .join(Block, Block.blocked_id == User.id)
            .where(Block.blocker_id == actor.user_id)
            .order_by(Block.created_at.desc(), Block.blocked_id.desc())
            .limit(size + 1)
        )
        if cursor is not None:
            key = decode_cursor(cursor, _TimeKey)
            query = query.where(tuple_(Block.created_at, Block.blocked_id) < tuple_(key.t, key.id))
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return make_page([_connected(user, since) for user, since in rows], size, _time_key)

    # Internals ----------------------------------------------------------------

    async def _follow_list(
        self, viewer: AccessClaims, user_id: uuid.UUID, cursor: str | None, limit: int | None, *, followers: bool
    ) -> Page[ConnectedUser]:
        size = clamp_limit(limit)
        subject, other = (
            (Follow.followee_id, Follow.follower_id) if followers else (Follow.follower_id, Follow.followee_id)
        )
        query = (
            select(User, Follow.created_at)
            .join(Follow, other == User.id)
            .where(subject == user_id, not_blocked_with(viewer.user_id, other))
            .order_by(Follow.created_at.desc(), other.desc())
            .limit(size + 1)
        )
        if cursor is not None:
            key = decode_cursor(cursor, _TimeKey)
            query = query.where(tuple_(Follow.created_at, other) < tuple_(key.t, key.id))
        async with self._sessions() as session:
            await _require_visible(session, viewer.user_id, user_id)
            rows = (await session.execute(query)).all()
        return make_page([_connected(user, since) for user, since in rows], size, _time_key)

    async def _own_request(
        self,
        session: AsyncSession,
        request_id: uuid.UUID,
        *,
        recipient: uuid.UUID | None = None,
        sender: uuid.UUID | None = None,
    ) -> FriendRequest:
        """The request, locked, if the caller is its recipient (or sender); 404 otherwise, 409 if closed."""
        party = FriendRequest.recipient_id == recipient if recipient is not None else FriendRequest.sender_id == sender
        pair = (
            await session.execute(
                select(FriendRequest.sender_id, FriendRequest.recipient_id).where(FriendRequest.id == request_id, party)
            )
        ).one_or_none()
        if pair is None:
            raise NotFound("no such friend request", code="friend_request_not_found")
        # The pair lock comes before the row lock, in the same order every other pair write takes them.
        await _lock_pair(session, pair.sender_id, pair.recipient_id)
        request = await session.scalar(select(FriendRequest).where(FriendRequest.id == request_id).with_for_update())
        assert request is not None  # requests are never deleted, only closed
        if request.status != FriendRequestStatus.PENDING.value:
            raise Conflict(f"this friend request is already {request.status}", code="friend_request_not_pending")
        return request

    @staticmethod
    async def _accept(session: AsyncSession, request: FriendRequest, now: datetime) -> None:
        request.status = FriendRequestStatus.ACCEPTED.value
        request.responded_at = now
        await session.flush()
        low, high = sorted((request.sender_id, request.recipient_id))
        await session.execute(
            insert(Friendship).values(user_low_id=low, user_high_id=high, created_at=now).on_conflict_do_nothing()
        )
        await bus.record(
            session,
            bus.FriendAccepted(request_id=request.id, requester_id=request.sender_id, accepter_id=request.recipient_id),
        )

    @staticmethod
    async def _sever(session: AsyncSession, a: uuid.UUID, b: uuid.UUID, now: datetime) -> None:
        """End friendship, open requests, follows and standing vouches between ``a`` and ``b``."""
        low, high = sorted((a, b))
        await session.execute(
            sql_delete(Friendship).where(Friendship.user_low_id == low, Friendship.user_high_id == high)
        )
        await session.execute(
            update(FriendRequest)
            .where(
                FriendRequest.status == FriendRequestStatus.PENDING.value,
                or_(
                    and_(FriendRequest.sender_id == a, FriendRequest.recipient_id == b),
                    and_(FriendRequest.sender_id == b, FriendRequest.recipient_id == a),
                ),
            )
            .values(status=FriendRequestStatus.CANCELLED.value, responded_at=now)
        )
        await session.execute(
            sql_delete(Follow).where(
                or_(
                    and_(Follow.follower_id == a, Follow.followee_id == b),
                    and_(Follow.follower_id == b, Follow.followee_id == a),
                )
            )
        )
        await session.execute(
            update(Vouch)
            .where(
                Vouch.revoked_at.is_(None),
                or_(
                    and_(Vouch.voucher_id == a, Vouch.vouchee_id == b),
                    and_(Vouch.voucher_id == b, Vouch.vouchee_id == a),
                ),
            )
            .values(revoked_at=now)
        )

    @staticmethod
    async def _users(session: AsyncSession, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, User]:
        if not user_ids:
            return {}
        users = await session.scalars(select(User).where(User.id.in_(set(user_ids))))
        return {u.id: u for u in users}

    async def _out(self, session: AsyncSession, request: FriendRequest) -> FriendRequestOut:
        users = await self._users(session, [request.sender_id, request.recipient_id])
        return self._render(request, users)

    @staticmethod
    def _render(request: FriendRequest, users: dict[uuid.UUID, User]) -> FriendRequestOut:
        return FriendRequestOut(
            id=ids.encode(ids.Prefix.FRIEND_REQUEST, request.id),
            status=request.status,
            sender=_ref(users[request.sender_id]),
            recipient=_ref(users[request.recipient_id]),
            created_at=request.created_at,
            responded_at=request.responded_at,
        )


# ---------------------------------------------------------------------------
# Vouches
# ---------------------------------------------------------------------------


class VouchService:
    """One standing vouch per (voucher, vouchee); revocable; listed on the vouchee's profile."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    async def vouch(self, actor: AccessClaims, data: VouchCreate) -> VouchOut:
        """Vouch for a user; 409 ``already_vouched`` while an earlier vouch of the caller stands."""
        me = actor.user_id
        target = _body_user_id(data.user_id)
        _not_self(me, target, "user_id", "vouch for")
        note = " ".join(data.note.split())
        if not note:
            raise InvalidInput(errors=[FieldError("note", "must not be blank")])
        now = self._clock()
        vouch = Vouch(id=ids.uuid7(), voucher_id=me, vouchee_id=target, note=note, created_at=now)
        async with self._sessions.begin() as session:
            await _lock_pair(session, me, target)
            await _require_reachable(session, me, target)
            session.add(vouch)
            try:
                await session.flush()
            except IntegrityError as exc:
                if "uq_vouches_active_pair" in str(exc.orig):
                    raise Conflict("you already vouch for this user", code="already_vouched") from None
                raise
            await bus.record(session, bus.VouchCreated(vouch_id=vouch.id, voucher_id=me, vouchee_id=target))
        return VouchOut(
            id=ids.encode(ids.Prefix.VOUCH, vouch.id),
            voucher_id=ids.encode(ids.Prefix.USER, me),
            user_id=ids.encode(ids.Prefix.USER, target),
            note=note,
            created_at=now,
        )

    async def revoke(self, actor: AccessClaims, vouch_id: uuid.UUID) -> None:
        """Withdraw a vouch the caller gave; 404 for anyone else's or one already withdrawn."""
        async with self._sessions.begin() as session:
            revoked = await session.scalar(
                update(Vouch)
                .where(Vouch.id == vouch_id, Vouch.voucher_id == actor.user_id, Vouch.revoked_at.is_(None))
                .values(revoked_at=self._clock())
                .returning(Vouch.id)
            )
        if revoked is None:
            raise NotFound("no such vouch", code="vouch_not_found")

    async def list_received(
        self, viewer: AccessClaims, user_id: uuid.UUID, cursor: str | None, limit: int | None
    ) -> Page[ReceivedVouch]:
        """Standing vouches ``user_id`` received, newest first; vouchers in a block with the viewer are left out."""
        size = clamp_limit(limit)
        voucher = aliased(User)
        query = (
            select(Vouch, voucher)
            .join(voucher, voucher.id == Vouch.voucher_id)
            .where(
                Vouch.vouchee_id == user_id,
                Vouch.revoked_at.is_(None),
                not_blocked_with(viewer.user_id, Vouch.voucher_id),
            )
            .order_by(Vouch.id.desc())
            .limit(size + 1)
        )
        if cursor is not None:
            query = query.where(Vouch.id < decode_cursor(cursor, _IdKey).id)
        async with self._sessions() as session:
            await _require_visible(session, viewer.user_id, user_id)
            rows = (await session.execute(query)).all()
        items = [
            ReceivedVouch(
                id=ids.encode(ids.Prefix.VOUCH, vouch.id),
                voucher=_ref(user),
                note=vouch.note,
                created_at=vouch.created_at,
            )
            for vouch, user in rows
        ]
        return make_page(items, size, lambda item: _IdKey(id=ids.decode(ids.Prefix.VOUCH, item.id)))


# ---------------------------------------------------------------------------
# Invite codes
# ---------------------------------------------------------------------------


class InviteService:
    """Single-use invite codes with a per-user quota (admins have none)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    async def create(self, actor: AccessClaims) -> InviteOut:
        """A new code; 403 ``invite_quota_exceeded`` once the caller holds :data:`INVITE_QUOTA` live codes."""
        now = self._clock()
        async with self._sessions.begin() as session:
            # Serialises one user's concurrent requests so the count below cannot be raced past.
            await session.execute(
                select(func.pg_advisory_xact_lock(func.hashtextextended(f"invites:{actor.user_id}", 0)))
            )
            status = await session.scalar(select(User.status).where(User.id == actor.user_id))
            if status != AccountStatus.ACTIVE.value:
                raise PermissionDenied("only active accounts may invite", code="account_not_active")
            if Role.ADMIN.value not in actor.roles:
                live = await session.scalar(
                    select(func.count())
                    .select_from(InviteCode)
                    .where(
                        InviteCode.inviter_id == actor.user_id,
                        or_(InviteCode.used_at.is_not(None), InviteCode.expires_at > now),
                    )
                )
                if (live or 0) >= INVITE_QUOTA:
                    raise PermissionDenied(
                        f"you already have {INVITE_QUOTA} invite codes in use or waiting to be used",
                        code="invite_quota_exceeded",
                    )
            invite = InviteCode(
                id=ids.uuid7(), code=_new_code(), inviter_id=actor.user_id, created_at=now, expires_at=now + INVITE_TTL
            )
            session.add(invite)
        return InviteOut(
            code=invite.code, status="unused", created_at=now, expires_at=invite.expires_at, used_by=None, used_at=None
        )

    async def list_mine(self, actor: AccessClaims, cursor: str | None, limit: int | None) -> Page[InviteOut]:
        """The caller's codes, newest first, with who used each."""
        size = clamp_limit(limit)
        invitee = aliased(User)
        query = (
            select(InviteCode, invitee)
            .outerjoin(invitee, invitee.id == InviteCode.used_by_id)
            .where(InviteCode.inviter_id == actor.user_id)
            .order_by(InviteCode.id.desc())
            .limit(size + 1)
        )
        if cursor is not None:
            query = query.where(InviteCode.id < decode_cursor(cursor, _IdKey).id)
        now = self._clock()
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        keys = {invite.code: invite.id for invite, _ in rows}
        items = [
            InviteOut(
                code=invite.code,
                status="used" if invite.used_at else ("unused" if invite.expires_at > now else "expired"),
                created_at=invite.created_at,
                expires_at=invite.expires_at,
                used_by=_ref(user) if user is not None else None,
                used_at=invite.used_at,
            )
            for invite, user in rows
        ]
        return make_page(items, size, lambda item: _IdKey(id=keys[item.code]))


def _new_code() -> str:
    return "".join(secrets.choice(_INVITE_ALPHABET) for _ in range(_INVITE_LENGTH))
