"""Gamification jobs: streak badges and points, activity counters for badges, reminders and snapshots."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from shared.bus import StreakActivityRecorded
from shared.domain.gamification.services import (
    BEST_STREAK,
    OVERALL,
    Activity,
    apply_activity,
    award_points,
    raise_counter,
    send_streak_reminders,
    snapshot_leaderboards,
)
from workers.context import JobContext, resources_of
from workers.jobs.base import JobSpec

STREAK_POINT_REASONS = {"daily_checkin": "daily_checkin"}
"""Which streak activities earn points, and under which rate of ``POINT_RATES``."""


class ActivityOccurred(msgspec.Struct, frozen=True, kw_only=True):
    """Another feature's event for badges, streaks and points (see the ``*_FOR_EVENT`` tables), once per ``cause``."""

    user_id: uuid.UUID
    event_type: str
    occurred_at: datetime
    cause: str
    category: str | None = None


async def on_streak_activity(ctx: JobContext, event: StreakActivityRecorded) -> None:
    """Award streak badges from the overall streak, and points for counted check-ins."""
    res = ctx.resources
    async with res.sessions.begin() as session:
        if event.kind == OVERALL:
            await raise_counter(session, event.user_id, BEST_STREAK, event.longest)
        reason = STREAK_POINT_REASONS.get(event.kind)
        if reason is not None:
            await award_points(session, res.redis, event.user_id, reason=reason, cause=ctx.job_id, at=res.clock())


async def on_activity(ctx: JobContext, activity: ActivityOccurred) -> None:
    """Count badges, streaks and points for one activity; a repeat of the cause changes nothing."""
    res = ctx.resources
    async with res.sessions.begin() as session:
        await apply_activity(
            session,
            res.redis,
            Activity(
                user_id=activity.user_id,
                event_type=activity.event_type,
                occurred_at=activity.occurred_at,
                cause=activity.cause,
                category=activity.category,
            ),
        )


ON_STREAK_ACTIVITY = JobSpec(name="on_streak_activity", payload_type=StreakActivityRecorded, run=on_streak_activity)
ON_ACTIVITY = JobSpec(name="on_activity", payload_type=ActivityOccurred, run=on_activity)


async def streak_reminders(ctx: dict[Any, Any]) -> int:
    """Cron job: remind users in their local evening whose streak would break today."""
    res = resources_of(ctx)
    async with res.sessions.begin() as session:
        return await send_streak_reminders(session, res.clock())


async def leaderboard_snapshots(ctx: dict[Any, Any]) -> int:
    """Cron job: copy the top of every current leaderboard into ``leaderboard_snapshots``."""
    res = resources_of(ctx)
    async with res.sessions.begin() as session:
        return await snapshot_leaderboards(session, res.redis, res.clock())
