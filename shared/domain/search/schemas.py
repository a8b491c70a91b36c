"""Search results: a tagged union of user, club and post cards."""

from __future__ import annotations

import msgspec

from shared.domain.posts.schemas import PostItem


class UserHit(msgspec.Struct, tag_field="type", tag="user"):
    """A user found by name or bio."""

    id: str
    display_name: str
    avatar_url: str | None
    city: str | None


class ClubHit(msgspec.Struct, tag_field="type", tag="club"):
    """A club found by name or description."""

    id: str
    name: str
    slug: str
    privacy_level: str
    city: str | None
    member_count: int


SearchHit = UserHit | ClubHit | PostItem
