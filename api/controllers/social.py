"""Friends, follows, blocks, vouches and invite codes."""

from __future__ import annotations

import uuid

from litestar import Controller, Response, delete, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.deps import parse_id
from shared import ids
from shared.domain.auth.tokens import AccessClaims
from shared.domain.social.schemas import (
    BlockOut,
    ConnectedUser,
    FollowOut,
    FriendRequestCreate,
    FriendRequestOut,
    InviteCreate,
    InviteOut,
    ReceivedVouch,
    RequestDirection,
    VouchCreate,
    VouchOut,
)
from shared.domain.social.services import InviteService, SocialService, VouchService
from shared.pagination import Page

Cursor = Parameter(query="cursor", required=False, description="the next_cursor of the previous page")
Limit = Parameter(query="limit", required=False, description="page size (default 20, at most 100)")


def _status(created: bool) -> int:
    return HTTP_201_CREATED if created else HTTP_200_OK


def _user(caller: AccessClaims, value: str) -> uuid.UUID:
    """A user id in a path; ``me`` is the caller."""
    return caller.user_id if value == "me" else parse_id(ids.Prefix.USER, value)


class FriendController(Controller):
    """Friend requests and the caller's friends."""

    path = "/v1/friends"
    tags = ["friends"]

    @post("/requests")
    async def request(
        self, data: FriendRequestCreate, social_service: SocialService, caller: AccessClaims
    ) -> Response[FriendRequestOut]:
        """Ask a user to be friends (201); an open request is returned (200), or accepted if it came from them."""
        request, created = await social_service.request_friend(caller, data)
        return Response(request, status_code=_status(created))

    @get("/requests")
    async def requests(
        self,
        social_service: SocialService,
        caller: AccessClaims,
        direction: RequestDirection = "incoming",
        cursor: str | None = Cursor,
        limit: int | None = Limit,
    ) -> Page[FriendRequestOut]:
        """Open requests sent to the caller (``incoming``) or by the caller (``outgoing``)."""
        return await social_service.list_requests(caller, direction, cursor, limit)

    @post("/requests/{request_id:str}/accept", status_code=HTTP_200_OK)
    async def accept(self, request_id: str, social_service: SocialService, caller: AccessClaims) -> FriendRequestOut:
        """Accept a request sent to the caller."""
        return await social_service.accept_request(caller, parse_id(ids.Prefix.FRIEND_REQUEST, request_id))

    @post("/requests/{request_id:str}/decline", status_code=HTTP_200_OK)
    async def decline(self, request_id: str, social_service: SocialService, caller: AccessClaims) -> FriendRequestOut:
        """Decline a request sent to the caller."""
        return await social_service.decline_request(caller, parse_id(ids.Prefix.FRIEND_REQUEST, request_id))

    @delete("/requests/{request_id:str}")
    async def cancel(self, request_id: str, social_service: SocialService, caller: AccessClaims) -> None:
        """Withdraw a request the caller sent."""
        await social_service.cancel_request(caller, parse_id(ids.Prefix.FRIEND_REQUEST, request_id))

    @get("/")
    async def friends(
        self,
        social_service: SocialService,
        caller: AccessClaims,
        cursor: str | None = Cursor,
        limit: int | None = Limit,
    ) -> Page[ConnectedUser]:
        """The caller's friends, most recent first."""
        return await social_service.list_friends(caller, cursor, limit)

    @delete("/{user_id:str}")
    async def unfriend(self, user_id: str, social_service: SocialService, caller: AccessClaims) -> None:
        """End a friendship."""
        await social_service.unfriend(caller, parse_id(ids.Prefix.USER, user_id))


class UserGraphController(Controller):
    """Follows, blocks and received vouches of a user."""

    path = "/v1/users"
    tags = ["users"]

    @post("/{user_id:str}/follow")
    async def follow(self, user_id: str, social_service: SocialService, caller: AccessClaims) -> Response[FollowOut]:
        """Follow a user (201; 200 if already following)."""
        follow, created = await social_service.follow(caller, parse_id(ids.Prefix.USER, user_id))
        return Response(follow, status_code=_status(created))

    @delete("/{user_id:str}/follow")
    async def unfollow(self, user_id: str, social_service: SocialService, caller: AccessClaims) -> None:
        """Stop following a user."""
        await social_service.unfollow(caller, parse_id(ids.Prefix.USER, user_id))

    @get("/{user_id:str}/followers")
    async def followers(
        self,
        user_id: str,
        social_service: SocialService,
        caller: AccessClaims,
        cursor: str | None = Cursor,
        limit: int | None = Limit,
    ) -> Page[ConnectedUser]:
        """Who follows the user (``me`` for the caller)."""
        return await social_service.list_followers(caller, _user(caller, user_id), cursor, limit)

    @get("/{user_id:str}/following")
    async def following(
        self,
        user_id: str,
        social_service: SocialService,
        caller: AccessClaims,
        cursor: str | None = Cursor,
        limit: int | None = Limit,
    ) -> Page[ConnectedUser]:
        """Whom the user (``me`` for the caller) follows."""
        return await social_service.list_following(caller, _user(caller, user_id), cursor, limit)

    @post("/{user_id:str}/block")
    async def block(self, user_id: str, social_service: SocialService, caller: AccessClaims) -> Response[BlockOut]:
        """Block a user (201; 200 if already blocked): ends friendship, requests, follows and vouches."""
        block, created = await social_service.block(caller, parse_id(ids.Prefix.USER, user_id))
        return Response(block, status_code=_status(created))

    @delete("/{user_id:str}/block")
    async def unblock(self, user_id: str, social_service: SocialService, caller: AccessClaims) -> None:
        """Lift a block."""
        await social_service.unblock(caller, parse_id(ids.Prefix.USER, user_id))

    @get("/me/blocks")
    async def blocks(
        self,
        social_service: SocialService,
        caller: AccessClaims,
        cursor: str | None = Cursor,
        limit: int | None = Limit,
    ) -> Page[ConnectedUser]:
        """Whom the caller blocks."""
        return await social_service.list_blocks(caller, cursor, limit)

    @get("/{user_id:str}/vouches")
    async def vouches(
        self,
        user_id: str,
        vouch_service: VouchService,
        caller: AccessClaims,
        cursor: str | None = Cursor,
        limit: int | None = Limit,
    ) -> Page[ReceivedVouch]:
        """Standing vouches the user (``me`` for the caller) received."""
        return await vouch_service.list_received(caller, _user(caller, user_id), cursor, limit)


class VouchController(Controller):
    """Giving and withdrawing vouches."""

    path = "/v1/vouches"
    tags = ["vouches"]

    @post("/", status_code=HTTP_201_CREATED)
    async def vouch(self, data: VouchCreate, vouch_service: VouchService, caller: AccessClaims) -> VouchOut:
        """Vouch for a user; one standing vouch per pair."""
        return await vouch_service.vouch(caller, data)

    @delete("/{vouch_id:str}")
    async def revoke(self, vouch_id: str, vouch_service: VouchService, caller: AccessClaims) -> None:
        """Withdraw a vouch the caller gave."""
        await vouch_service.revoke(caller, parse_id(ids.Prefix.VOUCH, vouch_id))


class InviteController(Controller):
    """The caller's invite codes."""

    path = "/v1/invites"
    tags = ["invites"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create(
        self, invite_service: InviteService, caller: AccessClaims, data: InviteCreate | None = None
    ) -> InviteOut:
        """A new single-use invite code, within the per-user quota."""
        return await invite_service.create(caller)

    @get("/")
    async def mine(
        self,
        invite_service: InviteService,
        caller: AccessClaims,
        cursor: str | None = Cursor,
        limit: int | None = Limit,
    ) -> Page[InviteOut]:
        """The caller's codes with their status and who used them."""
        return await invite_service.list_mine(caller, cursor, limit)
