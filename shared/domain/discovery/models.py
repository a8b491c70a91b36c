"""Discovery tables: computed recommendations and their runs, dismissals, icebreakers, places and curated lists."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Table,
    UniqueConstraint,
    Uuid,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, Timestamps, UUIDv7Key
from shared.domain.moderation.models import CaseStatus
from shared.domain.users.models import User


class RecKind(StrEnum):
    """What a recommendation points at."""

    EVENT = "event"
    PERSON = "person"
    CLUB = "club"


class RunTrigger(StrEnum):
    """Why a refresh ran."""

    CRON = "cron"
    SIGNAL = "signal"
    COLD_START = "cold_start"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class RecommendationRun(UUIDv7Key, Base):
    """One refresh of one user's recommendations: when, why, how long and how many."""

    __tablename__ = "recommendation_runs"
    __table_args__ = (
        CheckConstraint(_in("trigger", RunTrigger), name="trigger"),
        Index("ix_recommendation_runs_user_id_started", "user_id", "started_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    duration_ms: Mapped[int]
    event_count: Mapped[int]
    person_count: Mapped[int]
    club_count: Mapped[int]


class Recommendation(Base):
    """One ranked item for one user, as the last refresh computed it; the API pages through these."""

    __tablename__ = "recommendations"
    __table_args__ = (
        CheckConstraint(_in("kind", RecKind), name="kind"),
        CheckConstraint("score >= 0 AND score <= 1", name="score_unit"),
        # Keyset pages walk (score desc, target id) per user and kind.
        Index("ix_recommendations_page", "user_id", "kind", text("score DESC"), "target_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    # An event, user or club id; which one depends on ``kind`` (so no foreign key).
    target_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(160))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("recommendation_runs.id", ondelete="CASCADE"), index=True)
    computed_at: Mapped[datetime]


class RecommendationDismissal(Base):
    """ "Not interested": the item never comes back for this user."""

    __tablename__ = "recommendation_dismissals"
    __table_args__ = (CheckConstraint(_in("kind", RecKind), name="kind"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    target_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_at: Mapped[datetime]


class IcebreakerPrompt(Base):
    """A conversation starter; ``position`` orders the daily rotation, ``topic`` ties it to an interest."""

    __tablename__ = "icebreaker_prompts"
    __table_args__ = (UniqueConstraint("position"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    text: Mapped[str] = mapped_column(String(300))
    topic: Mapped[str | None] = mapped_column(String(50))
    position: Mapped[int]
    active: Mapped[bool] = mapped_column(Boolean, server_default=true())


# A pinned prompt must exist; deleting a prompt unpins it.
cast(Table, User.__table__).append_constraint(
    ForeignKeyConstraint(
        ["icebreaker_prompt_id"],
        ["icebreaker_prompts.id"],
        name="fk_users_icebreaker_prompt_id_icebreaker_prompts",
        ondelete="SET NULL",
    )
)


class Place(UUIDv7Key, Timestamps, Base):
    """A spot worth visiting, added by a curator; soft-deleted by its curator or a moderator."""

    __tablename__ = "places"
    __table_args__ = (
        CheckConstraint("latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180", name="coordinates"),
        Index("ix_places_point", text("point(longitude, latitude)"), postgresql_using="gist"),
        Index("ix_places_city", text("lower(city)")),
    )

    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    category: Mapped[str] = mapped_column(String(40))
    city: Mapped[str] = mapped_column(String(120))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    description: Mapped[str | None] = mapped_column(String(2000))
    media_urls: Mapped[list[str]] = mapped_column(ARRAY(String(1024)), server_default="{}")
    is_premium: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    deleted_at: Mapped[datetime | None]
    # Uploaded media attached to the place (owned by its curator, ready), in display order.
    media_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid), server_default="{}")
    # Hidden by a moderator: gone from every read, the map and lists, until restored.
    hidden_at: Mapped[datetime | None]
    hidden_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class CuratedList(UUIDv7Key, Timestamps, Base):
    """A curator's ordered must-visit list."""

    __tablename__ = "curated_lists"

    curator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(String(2000))
    city: Mapped[str | None] = mapped_column(String(120))
    deleted_at: Mapped[datetime | None]
    hidden_at: Mapped[datetime | None]
    hidden_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class CuratedListItem(Base):
    """A place on a list, at a position, with the curator's note."""

    __tablename__ = "curated_list_items"
    __table_args__ = (
        # Deferred so a whole list can be rewritten in one transaction.
        UniqueConstraint("list_id", "position", deferrable=True, initially="DEFERRED"),
        CheckConstraint("position >= 0", name="position_non_negative"),
    )

    list_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("curated_lists.id", ondelete="CASCADE"), primary_key=True)
    place_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("places.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int]
    note: Mapped[str | None] = mapped_column(String(1000))


class ContentCaseAction(StrEnum):
    """How a moderator settles a report on a place or list."""

    HIDE = "hide"
    REMOVE = "remove"
    DISMISS = "dismiss"


class ContentCase(UUIDv7Key, Base):
    """A user's report on a place or a curated list (exactly one of the two), reviewed by moderators."""

    __tablename__ = "discovery_moderation_cases"
    __table_args__ = (
        CheckConstraint("num_nonnulls(place_id, list_id) = 1", name="one_target"),
        CheckConstraint(_in("status", CaseStatus), name="status"),
        CheckConstraint(f"resolution IS NULL OR {_in('resolution', ContentCaseAction)}", name="resolution"),
        CheckConstraint("(status = 'open') = (resolved_at IS NULL)", name="resolved"),
        # One open report per reporter and target: concurrent repeats collapse onto it.
        Index(
            "uq_discovery_moderation_cases_open_place",
            "place_id",
            "reporter_id",
            unique=True,
            postgresql_where=text("status = 'open' AND place_id IS NOT NULL"),
        ),
        Index(
            "uq_discovery_moderation_cases_open_list",
            "list_id",
            "reporter_id",
            unique=True,
            postgresql_where=text("status = 'open' AND list_id IS NOT NULL"),
        ),
        Index("ix_discovery_moderation_cases_open", "id", postgresql_where=text("status = 'open'")),
    )

    place_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("places.id", ondelete="CASCADE"))
    list_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("curated_lists.id", ondelete="CASCADE"))
    reporter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), server_default=CaseStatus.OPEN.value)
    resolution: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(1000))
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    resolved_at: Mapped[datetime | None]
