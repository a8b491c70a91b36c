"""Posts (in clubs or on a creator's profile), threaded comments and reactions."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, Timestamps, UUIDv7Key

MAX_POST_LENGTH = 5000
MAX_COMMENT_LENGTH = 2000
# Depth of a top-level comment is 0; replies nest at most three levels deep in all.
MAX_COMMENT_DEPTH = 2
# Search queries must use this exact expression for PostgreSQL to pick the GIN index.
POST_DOCUMENT = "to_tsvector('simple'::regconfig, content)"


class Visibility(StrEnum):
    """Who may read a creator post; club posts follow their club's rules instead."""

    PUBLIC = "public"
    FOLLOWERS = "followers"
    # The author and users with an active platform subscription (creator-defined tiers come later).
    SUBSCRIBERS = "subscribers"


class ReactionKind(StrEnum):
    """The fixed reaction kinds."""

    LIKE = "like"
    LOVE = "love"
    HAHA = "haha"
    WOW = "wow"
    SAD = "sad"
    FIRE = "fire"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Post(UUIDv7Key, Timestamps, Base):
    """A post: in a club (``club_id`` set, no visibility) or on the author's profile (visibility set)."""

    __tablename__ = "posts"
    __table_args__ = (
        CheckConstraint(_in("visibility", Visibility), name="visibility"),
        CheckConstraint("(club_id IS NULL) = (visibility IS NOT NULL)", name="club_or_visibility"),
        CheckConstraint("space_id IS NULL OR club_id IS NOT NULL", name="space_needs_club"),
        CheckConstraint(f"char_length(content) <= {MAX_POST_LENGTH}", name="content_length"),
        # Keyset reads, newest first: a club's feed, and a creator's profile posts.
        Index("ix_posts_club_created", "club_id", "created_at", "id", postgresql_where=text("deleted_at IS NULL")),
        Index(
            "ix_posts_profile_created",
            "author_id",
            "created_at",
            "id",
            postgresql_where=text("deleted_at IS NULL AND club_id IS NULL"),
        ),
        Index(
            "ix_posts_search",
            text(POST_DOCUMENT),
            postgresql_using="gin",
        ),
    )

    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    club_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clubs.id", ondelete="CASCADE"))
    # The service checks the space is the post's club's; deleting a space leaves its posts in the club.
    space_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("club_spaces.id", ondelete="SET NULL"))
    visibility: Mapped[str | None] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(String(MAX_POST_LENGTH))
    # Opaque until media and events land; their features add the foreign keys.
    media_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid), server_default="{}")
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(30)), server_default="{}")
    pinned_at: Mapped[datetime | None]
    edited_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    deleted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Comment(UUIDv7Key, Timestamps, Base):
    """A comment on a post, or a reply to another comment of the same post; deletion leaves a tombstone."""

    __tablename__ = "comments"
    __table_args__ = (
        UniqueConstraint("id", "post_id", name="uq_comments_id_post_id"),
        # The parent must be a comment of the same post, whatever the service checks.
        ForeignKeyConstraint(
            ["parent_id", "post_id"],
            ["comments.id", "comments.post_id"],
            name="fk_comments_parent_id_comments",
            ondelete="CASCADE",
        ),
        CheckConstraint(f"depth >= 0 AND depth <= {MAX_COMMENT_DEPTH}", name="depth"),
        CheckConstraint("(parent_id IS NULL) = (depth = 0)", name="depth_matches_parent"),
        CheckConstraint(f"char_length(content) <= {MAX_COMMENT_LENGTH}", name="content_length"),
        Index("ix_comments_post_parent", "post_id", "parent_id", "id"),
    )

    post_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    depth: Mapped[int] = mapped_column(SmallInteger)
    # Emptied when the comment is deleted; the row stays so replies keep their place.
    content: Mapped[str] = mapped_column(String(MAX_COMMENT_LENGTH))
    edited_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]


class PostReaction(Base):
    """One user's reaction of one kind to a post; the primary key makes adding idempotent."""

    __tablename__ = "post_reactions"
    __table_args__ = (
        PrimaryKeyConstraint("post_id", "user_id", "kind", name="pk_post_reactions"),
        CheckConstraint(_in("kind", ReactionKind), name="kind"),
        Index("ix_post_reactions_post_kind", "post_id", "kind"),
    )

    post_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime]


class CommentReaction(Base):
    """One user's reaction of one kind to a comment."""

    __tablename__ = "comment_reactions"
    __table_args__ = (
        PrimaryKeyConstraint("comment_id", "user_id", "kind", name="pk_comment_reactions"),
        CheckConstraint(_in("kind", ReactionKind), name="kind"),
        Index("ix_comment_reactions_comment_kind", "comment_id", "kind"),
    )

    comment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime]
