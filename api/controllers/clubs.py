"""``/v1/clubs``: clubs, communities and circles; memberships, invitations and spaces."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, patch, post
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.deps import parse_id
from shared import ids
from shared.domain.auth.tokens import AccessClaims
from shared.domain.clubs.schemas import (
    ClubCreate,
    ClubDetail,
    ClubSummary,
    ClubUpdate,
    CreatedClub,
    InvitationAccept,
    InvitationCreate,
    InvitationSent,
    InviteLink,
    InviteLinkCreate,
    JoinByLink,
    JoinRequest,
    JoinResult,
    Member,
    MemberStanding,
    PendingRequest,
    RequestDecision,
    RoleChange,
    Space,
    SpaceCreate,
    SpaceUpdate,
    UserRef,
)
from shared.domain.clubs.services import ClubService
from shared.errors import FieldError, InvalidInput
from shared.pagination import Page


def _club(club_id: str) -> uuid.UUID:
    return parse_id(ids.Prefix.CLUB, club_id)


def _user(user_id: str) -> uuid.UUID:
    return parse_id(ids.Prefix.USER, user_id)


def _body_user(ref: UserRef) -> uuid.UUID:
    """A user id from a request body: malformed is a validation error, not a missing object."""
    try:
        return ids.decode(ids.Prefix.USER, ref.user_id)
    except ids.InvalidId:
        raise InvalidInput(errors=[FieldError("user_id", "not a valid usr_ id")]) from None


class ClubController(Controller):
    """Clubs and everything about belonging to one."""

    path = "/v1/clubs"
    tags = ["clubs"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create(self, data: ClubCreate, club_service: ClubService, caller: AccessClaims) -> CreatedClub:
        """Create a club; the caller becomes its owner."""
        return await club_service.create_club(caller, data)

    @get("/")
    async def list_clubs(
        self,
        club_service: ClubService,
        caller: AccessClaims,
        city: str | None = None,
        tag: str | None = None,
        q: str | None = None,
        kind: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[ClubSummary]:
        """Public and private clubs (and secret ones the caller belongs to), newest first."""
        return await club_service.list_clubs(caller, city=city, tag=tag, q=q, kind=kind, cursor=cursor, limit=limit)

    @post("/invitations/accept", status_code=HTTP_200_OK)
    async def accept_invitation(
        self, data: InvitationAccept, club_service: ClubService, caller: AccessClaims
    ) -> JoinResult:
        """Accept an emailed invitation."""
        return await club_service.accept_invitation(caller, data.token)

    @post("/join-by-link", status_code=HTTP_200_OK)
    async def join_by_link(self, data: JoinByLink, club_service: ClubService, caller: AccessClaims) -> JoinResult:
        """Join through a shareable invite link."""
        return await club_service.join_by_link(caller, data.code)

    @get("/{club_id:str}")
    async def detail(self, club_id: str, club_service: ClubService, caller: AccessClaims) -> ClubDetail:
        """A club and the caller's membership."""
        return await club_service.get_club(caller, _club(club_id))

    @patch("/{club_id:str}")
    async def update(
        self, club_id: str, data: ClubUpdate, club_service: ClubService, caller: AccessClaims
    ) -> ClubDetail:
        """Change a club (owner or admin)."""
        return await club_service.update_club(caller, _club(club_id), data)

    @delete("/{club_id:str}")
    async def remove(self, club_id: str, club_service: ClubService, caller: AccessClaims) -> None:
        """Delete a club (owner)."""
        await club_service.delete_club(caller, _club(club_id))

    @post("/{club_id:str}/join", status_code=HTTP_200_OK)
    async def join(
        self, club_id: str, club_service: ClubService, caller: AccessClaims, data: JoinRequest | None = None
    ) -> JoinResult:
        """Join a public club or ask to join a private one."""
        return await club_service.join(caller, _club(club_id), data.message if data else None)

    @delete("/{club_id:str}/membership")
    async def leave(self, club_id: str, club_service: ClubService, caller: AccessClaims) -> None:
        """Leave a club or withdraw a join request."""
        await club_service.leave(caller, _club(club_id))

    @get("/{club_id:str}/members")
    async def members(
        self,
        club_id: str,
        club_service: ClubService,
        caller: AccessClaims,
        q: str | None = None,
        role: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Member]:
        """The member directory."""
        return await club_service.list_members(caller, _club(club_id), q=q, role=role, cursor=cursor, limit=limit)

    @post("/{club_id:str}/members", status_code=HTTP_200_OK)
    async def add_member(
        self, club_id: str, data: UserRef, club_service: ClubService, caller: AccessClaims
    ) -> MemberStanding:
        """Add a user to a circle directly (owner or admin)."""
        return await club_service.add_member(caller, _club(club_id), _body_user(data))

    @patch("/{club_id:str}/members/{user_id:str}")
    async def change_role(
        self, club_id: str, user_id: str, data: RoleChange, club_service: ClubService, caller: AccessClaims
    ) -> MemberStanding:
        """Change a member's role (owner or admin, never above their own)."""
        return await club_service.change_role(caller, _club(club_id), _user(user_id), data.role)

    @delete("/{club_id:str}/members/{user_id:str}")
    async def remove_member(self, club_id: str, user_id: str, club_service: ClubService, caller: AccessClaims) -> None:
        """Remove a member of a lower role."""
        await club_service.remove_member(caller, _club(club_id), _user(user_id))

    @get("/{club_id:str}/requests")
    async def requests(
        self,
        club_id: str,
        club_service: ClubService,
        caller: AccessClaims,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[PendingRequest]:
        """Pending join requests (moderators and up)."""
        return await club_service.list_requests(caller, _club(club_id), cursor, limit)

    @post("/{club_id:str}/requests/{user_id:str}/approve", status_code=HTTP_200_OK)
    async def approve(
        self, club_id: str, user_id: str, club_service: ClubService, caller: AccessClaims
    ) -> RequestDecision:
        """Approve a join request."""
        return await club_service.decide_request(caller, _club(club_id), _user(user_id), approve=True)

    @post("/{club_id:str}/requests/{user_id:str}/reject", status_code=HTTP_200_OK)
    async def reject(
        self, club_id: str, user_id: str, club_service: ClubService, caller: AccessClaims
    ) -> RequestDecision:
        """Reject a join request."""
        return await club_service.decide_request(caller, _club(club_id), _user(user_id), approve=False)

    @post("/{club_id:str}/bans", status_code=HTTP_200_OK)
    async def ban(self, club_id: str, data: UserRef, club_service: ClubService, caller: AccessClaims) -> MemberStanding:
        """Ban a user of a lower role."""
        return await club_service.ban(caller, _club(club_id), _body_user(data))

    @delete("/{club_id:str}/bans/{user_id:str}")
    async def unban(self, club_id: str, user_id: str, club_service: ClubService, caller: AccessClaims) -> None:
        """Lift a ban."""
        await club_service.unban(caller, _club(club_id), _user(user_id))

    @post("/{club_id:str}/transfer", status_code=HTTP_200_OK)
    async def transfer(
        self, club_id: str, data: UserRef, club_service: ClubService, caller: AccessClaims
    ) -> MemberStanding:
        """Hand ownership to an active member (owner)."""
        return await club_service.transfer_ownership(caller, _club(club_id), _body_user(data))

    @post("/{club_id:str}/invitations", status_code=HTTP_201_CREATED)
    async def invite(
        self, club_id: str, data: InvitationCreate, club_service: ClubService, caller: AccessClaims
    ) -> InvitationSent:
        """Mail an invitation (moderators and up)."""
        return await club_service.invite_by_email(caller, _club(club_id), data.email)

    @post("/{club_id:str}/invite-links", status_code=HTTP_201_CREATED)
    async def invite_link(
        self, club_id: str, data: InviteLinkCreate, club_service: ClubService, caller: AccessClaims
    ) -> InviteLink:
        """Create a shareable join link (owner or admin)."""
        return await club_service.create_invite_link(caller, _club(club_id), data)

    @get("/{club_id:str}/spaces")
    async def spaces(self, club_id: str, club_service: ClubService, caller: AccessClaims) -> Page[Space]:
        """A club's spaces in order."""
        return await club_service.list_spaces(caller, _club(club_id))

    @post("/{club_id:str}/spaces", status_code=HTTP_201_CREATED)
    async def create_space(
        self, club_id: str, data: SpaceCreate, club_service: ClubService, caller: AccessClaims
    ) -> Space:
        """Add a space (owner or admin)."""
        return await club_service.create_space(caller, _club(club_id), data)

    @patch("/{club_id:str}/spaces/{space_id:str}")
    async def update_space(
        self, club_id: str, space_id: str, data: SpaceUpdate, club_service: ClubService, caller: AccessClaims
    ) -> Space:
        """Change or move a space (owner or admin)."""
        return await club_service.update_space(caller, _club(club_id), parse_id(ids.Prefix.SPACE, space_id), data)

    @delete("/{club_id:str}/spaces/{space_id:str}")
    async def delete_space(self, club_id: str, space_id: str, club_service: ClubService, caller: AccessClaims) -> None:
        """Remove a space (owner or admin)."""
        await club_service.delete_space(caller, _club(club_id), parse_id(ids.Prefix.SPACE, space_id))
