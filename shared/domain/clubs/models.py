"""Clubs (also communities and circles), their memberships, spaces and invitations."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, Timestamps, UUIDv7Key


class ClubKind(StrEnum):
    """Seed 000 calls them clubs, seed 002 communities, seed 004 circles; one table serves all three."""

    CLUB = "club"
    COMMUNITY = "community"
    CIRCLE = "circle"


class Privacy(StrEnum):
    """Who may find and see a club."""

    PUBLIC = "public"
    PRIVATE = "private"
    SECRET = "secret"


class PostingRights(StrEnum):
    """Who may post in a club or a space."""

    MEMBERS = "members"
    MODERATORS = "moderators"


class MemberRole(StrEnum):
    """A member's role in one club."""

    OWNER = "owner"
    ADMIN = "admin"
    MODERATOR = "moderator"
    MEMBER = "member"


# Roles in order of power: nobody acts on an equal or higher rank, nor grants a higher one.
ROLE_RANK = {MemberRole.MEMBER: 1, MemberRole.MODERATOR: 2, MemberRole.ADMIN: 3, MemberRole.OWNER: 4}


class MembershipStatus(StrEnum):
    """Where a membership stands."""

    PENDING = "pending"
    ACTIVE = "active"
    BANNED = "banned"


class SpaceKind(StrEnum):
    """What a space inside a club is for (seed 002)."""

    DISCUSSION = "discussion"
    EVENTS = "events"
    CHAT = "chat"
    RESOURCES = "resources"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Club(UUIDv7Key, Timestamps, Base):
    """A club, community or circle; ``member_count`` counts active memberships."""

    __tablename__ = "clubs"
    __table_args__ = (
        CheckConstraint(_in("kind", ClubKind), name="kind"),
        CheckConstraint(_in("privacy_level", Privacy), name="privacy_level"),
        CheckConstraint(_in("who_can_post", PostingRights), name="who_can_post"),
        CheckConstraint("kind <> 'circle' OR privacy_level = 'secret'", name="circle_is_secret"),
        CheckConstraint("member_count >= 0", name="member_count_non_negative"),
        CheckConstraint("required_tier IS NULL OR required_tier IN ('plus', 'pro')", name="required_tier"),
        Index("ix_clubs_city", text("lower(city)")),
        Index("ix_clubs_tags", "tags", postgresql_using="gin"),
    )

    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(80))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str | None] = mapped_column(String(2000))
    city: Mapped[str | None] = mapped_column(String(120))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(30)), server_default="{}")
    privacy_level: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    avatar_url: Mapped[str | None] = mapped_column(String(1024))
    cover_url: Mapped[str | None] = mapped_column(String(1024))
    join_approval: Mapped[bool] = mapped_column(server_default=text("false"))
    who_can_post: Mapped[str] = mapped_column(String(16), server_default=PostingRights.MEMBERS.value)
    # Changed only by the same transaction that moves a membership into or out of ``active``.
    member_count: Mapped[int] = mapped_column(server_default="0")
    # A premium tier a user needs to join (see ``shared.domain.payments.tiers``); None is open to all.
    required_tier: Mapped[str | None] = mapped_column(String(20))
    deleted_at: Mapped[datetime | None]
    # Uploaded club images behind avatar_url / cover_url (None when those are external URLs or unset).
    avatar_media_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))
    cover_media_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))


class ClubMembership(UUIDv7Key, Timestamps, Base):
    """One user's standing in one club: a join request, a membership or a ban."""

    __tablename__ = "club_memberships"
    __table_args__ = (
        UniqueConstraint("club_id", "user_id"),
        CheckConstraint(_in("role", MemberRole), name="role"),
        CheckConstraint(_in("status", MembershipStatus), name="status"),
        CheckConstraint("role <> 'owner' OR status = 'active'", name="owner_is_active"),
        # At most one owner per club, whatever races happen around a transfer.
        Index("uq_club_memberships_one_owner", "club_id", unique=True, postgresql_where=text("role = 'owner'")),
        Index("ix_club_memberships_user_id_status", "user_id", "status"),
    )

    club_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clubs.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16), server_default=MemberRole.MEMBER.value)
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(String(500))
    joined_at: Mapped[datetime | None]


class ClubSpace(UUIDv7Key, Timestamps, Base):
    """A named, ordered section of a club with its own posting rights."""

    __tablename__ = "club_spaces"
    __table_args__ = (
        UniqueConstraint("club_id", "name"),
        # Deferred so a reorder can rewrite positions inside one transaction.
        UniqueConstraint("club_id", "position", deferrable=True, initially="DEFERRED"),
        CheckConstraint(_in("kind", SpaceKind), name="kind"),
        CheckConstraint(_in("who_can_post", PostingRights), name="who_can_post"),
        CheckConstraint("position >= 0", name="position_non_negative"),
    )

    club_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clubs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(String(500))
    position: Mapped[int]
    who_can_post: Mapped[str] = mapped_column(String(16))


class ClubInvitation(UUIDv7Key, Base):
    """An emailed, single-use, expiring invitation; the token is stored only as its hash."""

    __tablename__ = "club_invitations"

    club_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    invited_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # Set once, by the conditional UPDATE that spends it.
    accepted_at: Mapped[datetime | None]
    accepted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ClubInviteLink(UUIDv7Key, Base):
    """A shareable join link with an expiry and an optional use limit enforced by the database."""

    __tablename__ = "club_invite_links"
    __table_args__ = (
        CheckConstraint("max_uses IS NULL OR (max_uses > 0 AND use_count <= max_uses)", name="use_limit"),
        CheckConstraint("use_count >= 0", name="use_count_non_negative"),
    )

    club_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    max_uses: Mapped[int | None]
    use_count: Mapped[int] = mapped_column(server_default="0")
