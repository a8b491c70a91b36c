"""Request and response bodies of the clubs endpoints (seed 000 §2.3 shapes, seed 002 spaces)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from shared.domain.auth.schemas import Email, OpaqueToken
from shared.domain.payments.tiers import TierName
from shared.domain.users.schemas import City, Url

ClubName = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
Description = Annotated[str, msgspec.Meta(max_length=2000)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=30)]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=10)]
KindName = Literal["club", "community", "circle"]
PrivacyName = Literal["public", "private", "secret"]
PostingRightsName = Literal["members", "moderators"]
RoleName = Literal["owner", "admin", "moderator", "member"]
GrantableRole = Literal["admin", "moderator", "member"]
StatusName = Literal["pending", "active", "banned"]
SpaceKindName = Literal["discussion", "events", "chat", "resources"]
SpaceName = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
SpaceDescription = Annotated[str, msgspec.Meta(max_length=500)]
Position = Annotated[int, msgspec.Meta(ge=0)]
PublicId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
JoinMessage = Annotated[str, msgspec.Meta(max_length=500)]


class ClubSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Join approval and posting rights of a club."""

    join_approval: bool = False
    who_can_post: PostingRightsName = "members"


class ClubSettingsUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Settings to change; absent fields stay as they are."""

    join_approval: bool | msgspec.UnsetType = msgspec.UNSET
    who_can_post: PostingRightsName | msgspec.UnsetType = msgspec.UNSET


class ClubCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new club; circles must be secret."""

    name: ClubName
    privacy_level: PrivacyName
    description: Description | None = None
    city: City | None = None
    tags: Tags = msgspec.field(default_factory=list)
    kind: KindName = "club"
    avatar_url: Url | None = None
    cover_url: Url | None = None
    settings: ClubSettings = msgspec.field(default_factory=ClubSettings)


class CreatedClub(msgspec.Struct):
    """What creating a club answers."""

    id: str
    slug: str


MediaId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class ClubUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Fields an owner or admin may change; the slug and kind never change."""

    name: ClubName | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    city: City | msgspec.UnsetType | None = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET
    privacy_level: PrivacyName | msgspec.UnsetType = msgspec.UNSET
    avatar_url: Url | msgspec.UnsetType | None = msgspec.UNSET
    cover_url: Url | msgspec.UnsetType | None = msgspec.UNSET
    settings: ClubSettingsUpdate | msgspec.UnsetType = msgspec.UNSET
    # Only users whose premium tier is at least this may join; None opens the club to everyone.
    required_tier: TierName | msgspec.UnsetType | None = msgspec.UNSET
    # Ready ``club`` uploads of the caller's for this club; avatar_url / cover_url then point at their thumbnails.
    avatar_media_id: MediaId | msgspec.UnsetType | None = msgspec.UNSET
    cover_media_id: MediaId | msgspec.UnsetType | None = msgspec.UNSET


class MembershipView(msgspec.Struct):
    """The caller's standing in a club."""

    role: RoleName
    status: StatusName


class ClubDetail(msgspec.Struct):
    """A club as its viewer may see it, with the viewer's own membership."""

    id: str
    kind: KindName
    name: str
    slug: str
    description: str | None
    city: str | None
    tags: list[str]
    privacy_level: PrivacyName
    owner_id: str
    avatar_url: str | None
    cover_url: str | None
    settings: ClubSettings
    member_count: int
    created_at: datetime
    updated_at: datetime
    membership: MembershipView | None
    required_tier: TierName | None
    locked: bool


class ClubSummary(msgspec.Struct):
    """A club in a list."""

    id: str
    kind: KindName
    name: str
    slug: str
    description: str | None
    city: str | None
    tags: list[str]
    privacy_level: PrivacyName
    avatar_url: str | None
    member_count: int
    created_at: datetime
    required_tier: TierName | None
    locked: bool


class JoinRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A join request's note to the moderators."""

    message: JoinMessage | None = None


class JoinResult(msgspec.Struct):
    """``approved`` once the caller is an active member, ``pending`` while a request waits."""

    status: Literal["approved", "pending"]
    club_id: str


class RequestDecision(msgspec.Struct):
    """The outcome of approving or rejecting a join request."""

    status: Literal["approved", "rejected"]


class UserRef(msgspec.Struct, forbid_unknown_fields=True):
    """A body naming one user."""

    user_id: PublicId


class RoleChange(msgspec.Struct, forbid_unknown_fields=True):
    """A new role; ``owner`` is granted only by transfer."""

    role: GrantableRole


class MemberUser(msgspec.Struct):
    """The public face of a member."""

    id: str
    display_name: str
    avatar_url: str | None


class Member(msgspec.Struct):
    """An active member in the directory."""

    user: MemberUser
    role: RoleName
    joined_at: datetime | None


class PendingRequest(msgspec.Struct):
    """A join request waiting for a moderator."""

    user: MemberUser
    message: str | None
    requested_at: datetime


class MemberStanding(msgspec.Struct):
    """A member's role and status after a change."""

    user_id: str
    role: RoleName
    status: StatusName


class InvitationCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Whom to invite by email."""

    email: Email


class InvitationSent(msgspec.Struct):
    """An invitation was mailed."""

    email: str
    expires_at: datetime


class InvitationAccept(msgspec.Struct, forbid_unknown_fields=True):
    """The token from an invitation mail."""

    token: OpaqueToken


class InviteLinkCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A shareable link's lifetime and use limit (``null`` for unlimited uses)."""

    expires_in_hours: Annotated[int, msgspec.Meta(ge=1, le=720)] = 168
    max_uses: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None


class InviteLink(msgspec.Struct):
    """A shareable join link; the code is shown only once."""

    code: str
    url: str
    expires_at: datetime
    max_uses: int | None


class JoinByLink(msgspec.Struct, forbid_unknown_fields=True):
    """The code of a shareable join link."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class SpaceCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new space; without a position it goes last."""

    name: SpaceName
    kind: SpaceKindName = "discussion"
    description: SpaceDescription | None = None
    who_can_post: PostingRightsName = "members"
    position: Position | None = None


class SpaceUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Space fields to change; a new position moves the space and shifts the others."""

    name: SpaceName | msgspec.UnsetType = msgspec.UNSET
    kind: SpaceKindName | msgspec.UnsetType = msgspec.UNSET
    description: SpaceDescription | msgspec.UnsetType | None = msgspec.UNSET
    who_can_post: PostingRightsName | msgspec.UnsetType = msgspec.UNSET
    position: Position | msgspec.UnsetType = msgspec.UNSET


class Space(msgspec.Struct):
    """A section of a club."""

    id: str
    club_id: str
    name: str
    kind: SpaceKindName
    description: str | None
    position: int
    who_can_post: PostingRightsName
    created_at: datetime
    updated_at: datetime
