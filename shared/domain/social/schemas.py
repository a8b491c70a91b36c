"""Request and response bodies of the friends, follows, blocks, vouches and invites endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Note = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
PublicUserId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, examples=["usr_01jd0000000000000000000000"])]
RequestDirection = Literal["incoming", "outgoing"]


class UserRef(msgspec.Struct):
    """Enough of a user to render a name and an avatar."""

    id: str
    display_name: str
    avatar_url: str | None


class FriendRequestCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Whom to ask."""

    user_id: PublicUserId


class FriendRequestOut(msgspec.Struct):
    """A friend request; ``status`` is ``accepted`` when asking someone who had already asked you."""

    id: str
    status: str
    sender: UserRef
    recipient: UserRef
    created_at: datetime
    responded_at: datetime | None


class ConnectedUser(msgspec.Struct):
    """A user in a friends, followers, following or blocks list, and since when."""

    id: str
    display_name: str
    avatar_url: str | None
    since: datetime


class FollowOut(msgspec.Struct):
    """The caller follows ``user_id`` since ``since``."""

    user_id: str
    following: bool
    since: datetime


class BlockOut(msgspec.Struct):
    """The caller blocks ``user_id`` since ``blocked_at``."""

    user_id: str
    blocked_at: datetime


class VouchCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Vouch for a user, with a note saying why."""

    user_id: PublicUserId
    note: Note


class VouchOut(msgspec.Struct):
    """A vouch the caller gave."""

    id: str
    voucher_id: str
    user_id: str
    note: str
    created_at: datetime


class ReceivedVouch(msgspec.Struct):
    """A vouch a user received, with who gave it."""

    id: str
    voucher: UserRef
    note: str
    created_at: datetime


class InviteCreate(msgspec.Struct, forbid_unknown_fields=True):
    """No fields yet: the code, its expiry and its owner are never the caller's to choose."""


class InviteOut(msgspec.Struct):
    """An invite code of the caller; ``status`` is ``unused``, ``used`` or ``expired``."""

    code: str
    status: str
    created_at: datetime
    expires_at: datetime
    used_by: UserRef | None
    used_at: datetime | None
