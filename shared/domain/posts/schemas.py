"""Request and response bodies of posts, comments, reactions and feeds (seed 000 §2.3 card shapes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from shared.domain.media.schemas import MediaView
from shared.domain.posts.models import MAX_COMMENT_LENGTH, MAX_POST_LENGTH

PostText = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_POST_LENGTH)]
CommentText = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_COMMENT_LENGTH)]
PublicId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=30)]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=10)]
MediaIds = Annotated[list[PublicId], msgspec.Meta(max_length=10)]
VisibilityName = Literal["public", "followers", "subscribers"]
ReactionName = Literal["like", "love", "haha", "wow", "sad", "fire"]


class ClubPostCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new post in a club, optionally in one of its spaces."""

    content: PostText
    media_ids: MediaIds = msgspec.field(default_factory=list)
    event_id: PublicId | None = None
    space_id: PublicId | None = None
    tags: Tags = msgspec.field(default_factory=list)


class CreatorPostCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new post on the caller's own profile."""

    content: PostText
    visibility: VisibilityName = "public"
    media_ids: MediaIds = msgspec.field(default_factory=list)
    event_id: PublicId | None = None
    tags: Tags = msgspec.field(default_factory=list)


class PostUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """What an author may change; ``visibility`` only on profile posts."""

    content: PostText | msgspec.UnsetType = msgspec.UNSET
    media_ids: MediaIds | msgspec.UnsetType = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET
    visibility: VisibilityName | msgspec.UnsetType = msgspec.UNSET


class CreatedPost(msgspec.Struct):
    """What creating a post answers."""

    id: str
    created_at: datetime


class Author(msgspec.Struct):
    """The public face of whoever wrote a post or comment."""

    id: str
    display_name: str
    avatar_url: str | None


class ClubRef(msgspec.Struct):
    """The club a post belongs to, for the card header."""

    id: str
    name: str
    slug: str


class PostItem(msgspec.Struct, tag_field="type", tag="post"):
    """A post as a card; the ``type`` tag lets feeds mix posts with events and media later."""

    id: str
    author: Author
    club: ClubRef | None
    space_id: str | None
    visibility: VisibilityName | None
    content: str
    # Ready items only, in the order attached; rejected or deleted media drops out.
    media: list[MediaView]
    event_id: str | None
    tags: list[str]
    reactions: dict[str, int]
    my_reactions: list[str]
    comment_count: int
    pinned: bool
    created_at: datetime
    edited_at: datetime | None


class EventCard(msgspec.Struct, tag_field="type", tag="event"):
    """A published event as a feed card; ``published_at`` is its place in the feed."""

    id: str
    title: str
    start_time: datetime
    end_time: datetime
    timezone: str
    location_name: str
    kind: str
    club: ClubRef | None
    organizer: Author
    attendees_count: int
    published_at: datetime
    # A paid boost placed this card at the top of the first page (seed 000 "sponsored").
    sponsored: bool = False


# Feed items are a tagged union on ``type``.
FeedItem = PostItem | EventCard


class ReactionCreate(msgspec.Struct, forbid_unknown_fields=True):
    """One reaction kind."""

    kind: ReactionName


class ReactionSummary(msgspec.Struct):
    """Reaction counts on one post or comment after a change."""

    reactions: dict[str, int]
    my_reactions: list[str]


class CommentCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A comment, or a reply when ``parent_id`` names a comment of the same post."""

    content: CommentText
    parent_id: PublicId | None = None


class CommentUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """New text for a comment."""

    content: CommentText


class CommentItem(msgspec.Struct):
    """A comment; a deleted one keeps its place with ``content`` null and ``deleted`` true."""

    id: str
    post_id: str
    parent_id: str | None
    depth: int
    author: Author | None
    content: str | None
    deleted: bool
    reply_count: int
    reactions: dict[str, int]
    my_reactions: list[str]
    created_at: datetime
    edited_at: datetime | None
