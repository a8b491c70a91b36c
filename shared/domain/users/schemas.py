"""Request and response bodies of the users endpoints (seed 000 §2.1 shapes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from shared.domain.auth.schemas import Email, Password

DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
City = Annotated[str, msgspec.Meta(max_length=120)]
Interest = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
Interests = Annotated[list[Interest], msgspec.Meta(max_length=30)]
Bio = Annotated[str, msgspec.Meta(max_length=500)]
Url = Annotated[str, msgspec.Meta(max_length=1024, pattern=r"^https?://\S+$")]
TimezoneName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, examples=["America/Chicago"])]
PromptId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class RegisterRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Sign-up fields."""

    email: Email
    password: Password
    display_name: DisplayName
    city: City | None = None
    interests: Interests = msgspec.field(default_factory=list)
    signup_source: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    # Required when the platform is invite-only; validated and recorded whenever given.
    invite_code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class RegisteredUser(msgspec.Struct):
    """What sign-up answers."""

    id: str
    display_name: str
    city: str | None
    interests: list[str]
    created_at: datetime


class BadgeSummary(msgspec.Struct):
    """A badge the user holds."""

    code: str
    earned_at: datetime


class PublicProfile(msgspec.Struct):
    """What anyone signed in may see of a user."""

    id: str
    display_name: str
    bio: str | None
    city: str | None
    avatar_url: str | None
    interests: list[str]
    badges: list[BadgeSummary]
    premium_tier: str | None
    mutual_clubs: list[str]
    last_active_at: datetime | None


class OwnProfile(msgspec.Struct):
    """The full profile, for its owner."""

    id: str
    email: str
    email_verified: bool
    display_name: str
    bio: str | None
    city: str | None
    avatar_url: str | None
    interests: list[str]
    timezone: str
    icebreaker_prompt_id: str | None
    roles: list[str]
    status: str
    settings: dict[str, Any]
    badges: list[BadgeSummary]
    premium_tier: str | None
    last_active_at: datetime | None
    created_at: datetime


class ProfileUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Fields a user may change on their profile; absent fields stay as they are."""

    display_name: DisplayName | msgspec.UnsetType = msgspec.UNSET
    bio: Bio | msgspec.UnsetType | None = msgspec.UNSET
    city: City | msgspec.UnsetType | None = msgspec.UNSET
    interests: Interests | msgspec.UnsetType = msgspec.UNSET
    avatar_url: Url | msgspec.UnsetType | None = msgspec.UNSET
    # A ready ``avatar`` upload of the user's own; ``avatar_url`` then points at its thumbnail.
    avatar_media_id: str | msgspec.UnsetType | None = msgspec.UNSET
    timezone: TimezoneName | msgspec.UnsetType = msgspec.UNSET
    icebreaker_prompt_id: PromptId | msgspec.UnsetType | None = msgspec.UNSET


class Success(msgspec.Struct):
    """A bare acknowledgement."""

    success: bool = True


class DeleteAccountRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Deleting an account asks for its password again."""

    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
