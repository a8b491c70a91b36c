"""Request and response bodies of streaks, badges and leaderboards."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

StreakEvent = Literal["daily_checkin", "rsvp", "message"]
Period = Literal["week", "month", "all"]


class StreakActivity(msgspec.Struct, forbid_unknown_fields=True):
    """One activity that counts toward a streak."""

    event: StreakEvent
    occurred_at: datetime


class StreakCounts(msgspec.Struct):
    """A streak after an activity."""

    current_streak: int
    longest_streak: int


class StreakView(msgspec.Struct):
    """One kind of streak of a user."""

    kind: str
    current_streak: int
    longest_streak: int
    last_day: date | None


class StreakList(msgspec.Struct):
    """Every kind of streak of a user (kinds never active read as zero)."""

    streaks: list[StreakView]


class EarnedBadge(msgspec.Struct):
    """A badge a user holds."""

    code: str
    name: str
    earned_at: datetime


class UserBadges(msgspec.Struct):
    """The badges of a user, oldest first."""

    badges: list[EarnedBadge]


class BadgeInfo(msgspec.Struct):
    """A catalog entry."""

    code: str
    name: str
    description: str
    criteria: str


class BadgeCatalog(msgspec.Struct):
    """Every badge there is."""

    badges: list[BadgeInfo]


BoardName = Annotated[str, msgspec.Meta(min_length=1, max_length=60)]


class LeaderboardEntry(msgspec.Struct):
    """One line of a leaderboard; equal scores share a rank."""

    rank: int
    user_id: str
    display_name: str
    score: int


class MyRank(msgspec.Struct):
    """The caller's place on a leaderboard (``rank`` is null with no points in the period)."""

    rank: int | None
    user_id: str
    display_name: str
    score: int
