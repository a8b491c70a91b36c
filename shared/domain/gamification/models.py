"""Streaks, the badge catalog and awards, activity counters, points and leaderboard snapshots."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, PrimaryKeyConstraint, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, UUIDv7Key


class Streak(Base):
    """One user's streak of one kind; days are the user's local days."""

    __tablename__ = "streaks"
    __table_args__ = (
        PrimaryKeyConstraint("user_id", "kind"),
        CheckConstraint("kind IN ('daily_checkin', 'rsvp', 'message', 'overall')", name="kind"),
        CheckConstraint("current >= 0 AND longest >= current", name="counts"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    current: Mapped[int]
    longest: Mapped[int]
    last_day: Mapped[date]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Badge(Base):
    """A badge of the catalog (seeded by migration)."""

    __tablename__ = "badges"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(Text)
    # Which counter reaches which threshold, e.g. "events_attended >= 10".
    counter: Mapped[str] = mapped_column(String(40))
    threshold: Mapped[int]


class UserBadge(Base):
    """A badge a user holds; the primary key makes awarding idempotent."""

    __tablename__ = "user_badges"
    __table_args__ = (PrimaryKeyConstraint("user_id", "badge_code"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    badge_code: Mapped[str] = mapped_column(ForeignKey("badges.code", ondelete="CASCADE"))
    earned_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ActivityCounter(Base):
    """How often a user did one thing (posts, clubs joined ...), the input of count badges."""

    __tablename__ = "activity_counters"
    __table_args__ = (PrimaryKeyConstraint("user_id", "counter"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    counter: Mapped[str] = mapped_column(String(40))
    value: Mapped[int]


class CountedCause(Base):
    """A cause (usually an outbox row id) already counted, so a job run twice counts once."""

    __tablename__ = "counted_causes"
    __table_args__ = (PrimaryKeyConstraint("cause", "purpose"),)

    cause: Mapped[str] = mapped_column(String(120))
    # "counter:<name>" or "points": one cause may feed several purposes.
    purpose: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class PointAward(UUIDv7Key, Base):
    """Points given to a user for one cause; the ledger behind the Redis leaderboards."""

    __tablename__ = "point_awards"
    __table_args__ = (
        Index("uq_point_awards_cause", "cause", unique=True),
        Index("ix_point_awards_user_id", "user_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    cause: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(String(40))
    points: Mapped[int]
    city: Mapped[str | None] = mapped_column(String(120))
    category: Mapped[str | None] = mapped_column(String(60))
    awarded_at: Mapped[datetime]


class LeaderboardSnapshot(UUIDv7Key, Base):
    """One ranked line of a leaderboard as a cron saw it."""

    __tablename__ = "leaderboard_snapshots"
    __table_args__ = (
        Index("uq_leaderboard_snapshots_board_user", "board", "period_key", "user_id", unique=True),
        CheckConstraint("period IN ('week', 'month', 'all')", name="period"),
    )

    board: Mapped[str] = mapped_column(String(200))
    period: Mapped[str] = mapped_column(String(8))
    period_key: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    rank: Mapped[int]
    score: Mapped[int]
    taken_at: Mapped[datetime]
