"""Streaks, reminders, badges and leaderboards with a frozen clock and a real burst worker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.gamification.models import ActivityCounter, LeaderboardSnapshot, Streak, UserBadge
from shared.domain.gamification.schemas import StreakActivity
from shared.domain.gamification.services import (
    BadgeService,
    LeaderboardService,
    StreakService,
    add_points,
    count_activity,
    period_key,
    raise_counter,
    send_streak_reminders,
    snapshot_leaderboards,
)
from shared.domain.notifications.models import Notification
from shared.domain.users.models import User
from shared.errors import InvalidInput
from tests.workers.conftest import Drain, MakeUser
from workers.jobs.gamification import ON_ACTIVITY, ActivityOccurred

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def streaks(sessions: Sessions) -> StreakService:
    """The streak service with the (time-machine controlled) real clock."""
    return StreakService(sessions, sessions)


async def checkin(service: StreakService, user: User, at: datetime, event: str = "daily_checkin") -> tuple[int, int]:
    """Record an activity at ``at`` with the clock just after it."""
    with time_machine.travel(at + timedelta(minutes=1), tick=False):
        counts = await service.record(user.id, user.id, StreakActivity(event=event, occurred_at=at))  # type: ignore[arg-type]
    return counts.current_streak, counts.longest_streak


async def notifications_of(sessions: Sessions, user_id: uuid.UUID, type_: str) -> list[Notification]:
    """The user's notifications of one type."""
    async with sessions() as session:
        return list(
            (
                await session.scalars(
                    select(Notification).where(Notification.user_id == user_id, Notification.type == type_)
                )
            ).all()
        )


async def test_a_day_is_the_users_local_day(streaks: StreakService, make_user: MakeUser) -> None:
    auckland = await make_user(timezone="Pacific/Auckland")  # UTC+13 in November
    utc = await make_user(timezone="UTC")
    # 10:30Z is 23:30 on Nov 22 in Auckland, 11:30Z is 00:30 on Nov 23: two local days, one UTC day.
    first, second = datetime(2026, 11, 22, 10, 30, tzinfo=UTC), datetime(2026, 11, 22, 11, 30, tzinfo=UTC)

    assert await checkin(streaks, auckland, first) == (1, 1)
    assert await checkin(streaks, auckland, second) == (2, 2)
    assert await checkin(streaks, utc, first) == (1, 1)
    assert await checkin(streaks, utc, second) == (1, 1)


async def test_days_across_the_dst_change_are_consecutive(
    streaks: StreakService, make_user: MakeUser, sessions: Sessions
) -> None:
    user = await make_user(timezone="America/New_York")
    # New York leaves DST at 06:00Z on Nov 1: the local day Nov 1 is 25 hours long.
    moments = [
        datetime(2026, 10, 31, 3, 30, tzinfo=UTC),  # Oct 30, 23:30 EDT
        datetime(2026, 10, 31, 4, 30, tzinfo=UTC),  # Oct 31, 00:30 EDT
        datetime(2026, 11, 2, 4, 30, tzinfo=UTC),  # Nov 1, 23:30 EST (the long day)
        datetime(2026, 11, 2, 5, 30, tzinfo=UTC),  # Nov 2, 00:30 EST
    ]
    results = [await checkin(streaks, user, at) for at in moments]

    # Oct 31 -> Nov 1 is consecutive even though 48 hours passed between those two check-ins.
    assert results == [(1, 1), (2, 2), (3, 3), (4, 4)]
    async with sessions() as session:
        row = await session.get(Streak, (user.id, "daily_checkin"))
    assert row is not None
    assert row.last_day == date(2026, 11, 2)


async def test_same_day_repeats_and_a_missed_day(streaks: StreakService, make_user: MakeUser) -> None:
    user = await make_user(timezone="Europe/Berlin")
    day1 = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)

    assert await checkin(streaks, user, day1) == (1, 1)
    assert await checkin(streaks, user, day1 + timedelta(hours=10)) == (1, 1)
    assert await checkin(streaks, user, day1 + timedelta(days=1)) == (2, 2)
    assert await checkin(streaks, user, day1 + timedelta(days=1, hours=3), "message") == (1, 1)
    # Day 3 missed.
    assert await checkin(streaks, user, day1 + timedelta(days=3)) == (1, 2)

    with time_machine.travel(day1 + timedelta(days=3, hours=2), tick=False):
        shown = {s.kind: s for s in (await streaks.list(user.id)).streaks}
    assert (shown["daily_checkin"].current_streak, shown["daily_checkin"].longest_streak) == (1, 2)
    assert (shown["overall"].current_streak, shown["overall"].longest_streak) == (1, 2)
    assert shown["rsvp"].current_streak == 0
    assert shown["rsvp"].last_day is None
    # A message streak last active two days ago reads as broken.
    assert (shown["message"].current_streak, shown["message"].longest_streak) == (0, 1)


async def test_occurred_at_window(streaks: StreakService, make_user: MakeUser) -> None:
    user = await make_user()
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        for bad in (now + timedelta(minutes=6), now - timedelta(hours=48, seconds=1)):
            with pytest.raises(InvalidInput):
                await streaks.record(user.id, user.id, StreakActivity(event="rsvp", occurred_at=bad))
        ok = await streaks.record(
            user.id, user.id, StreakActivity(event="rsvp", occurred_at=now + timedelta(minutes=4))
        )
    assert ok.current_streak == 1


async def test_concurrent_activity_counts_a_day_once(
    streaks: StreakService, make_user: MakeUser, sessions: Sessions
) -> None:
    user = await make_user()
    at = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    with time_machine.travel(at, tick=True):
        results = await asyncio.gather(
            *(streaks.record(user.id, user.id, StreakActivity(event="daily_checkin", occurred_at=at)) for _ in range(8))
        )
    assert {(r.current_streak, r.longest_streak) for r in results} == {(1, 1)}
    async with sessions() as session:
        overall = await session.get(Streak, (user.id, "overall"))
    assert overall is not None
    assert overall.current == 1


async def test_streak_reminder_in_the_local_evening_once(
    streaks: StreakService, make_user: MakeUser, sessions: Sessions
) -> None:
    user = await make_user(timezone="Asia/Tokyo")  # UTC+9
    active = await make_user(timezone="Asia/Tokyo")
    short = await make_user(timezone="Asia/Tokyo")
    for day in (20, 21):
        await checkin(streaks, user, datetime(2026, 11, day, 1, 0, tzinfo=UTC))
        await checkin(streaks, active, datetime(2026, 11, day, 1, 0, tzinfo=UTC))
    await checkin(streaks, active, datetime(2026, 11, 22, 1, 0, tzinfo=UTC))
    await checkin(streaks, short, datetime(2026, 11, 21, 1, 0, tzinfo=UTC))

    async def run_at(at: datetime) -> None:
        with time_machine.travel(at, tick=False):
            async with sessions.begin() as session:
                await send_streak_reminders(session, at)

    await run_at(datetime(2026, 11, 22, 9, 30, tzinfo=UTC))  # 18:30 in Tokyo: too early
    assert await notifications_of(sessions, user.id, "streak_reminder") == []
    await run_at(datetime(2026, 11, 22, 10, 15, tzinfo=UTC))  # 19:15
    await run_at(datetime(2026, 11, 22, 11, 45, tzinfo=UTC))  # 20:45, same local day

    [reminder] = await notifications_of(sessions, user.id, "streak_reminder")
    assert reminder.payload == {"current_streak": 2}
    assert await notifications_of(sessions, active.id, "streak_reminder") == []
    assert await notifications_of(sessions, short.id, "streak_reminder") == []


async def test_a_week_of_checkins_earns_the_streak_badge_once_through_the_worker(
    streaks: StreakService, make_user: MakeUser, sessions: Sessions, drain: Drain, arq_redis: ArqRedis
) -> None:
    user = await make_user(timezone="UTC", city="Badge Town " + uuid.uuid4().hex[:6])
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    for offset in range(8):
        await checkin(streaks, user, start + timedelta(days=offset))
    await drain()

    badges = await BadgeService(sessions).of_user(user.id)
    assert [b.code for b in badges.badges] == ["streak_7"]
    assert badges.badges[0].name == "Week Streak"
    [earned] = await notifications_of(sessions, user.id, "badge_earned")
    assert earned.payload["badge_code"] == "streak_7"
    async with sessions() as session:
        best = await session.get(ActivityCounter, (user.id, "best_streak"))
    assert best is not None
    assert best.value == 8
    # Eight counted check-ins at 5 points each, on the all-time board of the user's city.
    board = LeaderboardService(sessions, arq_redis)
    mine = await board.mine(user.id, city=user.city, category=None, period="all")
    assert (mine.rank, mine.score) == (1, 40)


async def test_badges_are_awarded_once_when_two_jobs_race(make_user: MakeUser, sessions: Sessions) -> None:
    user = await make_user()

    async def count(cause: str) -> list[str]:
        async with sessions.begin() as session:
            return await count_activity(session, user.id, "posts", cause=cause)

    async def streak(value: int) -> list[str]:
        async with sessions.begin() as session:
            return await raise_counter(session, user.id, "best_streak", value)

    results = await asyncio.gather(count("post-a"), count("post-b"), count("post-a"), streak(30), streak(31))

    assert sorted(code for codes in results for code in codes) == ["first_post", "streak_30", "streak_7"]
    async with sessions() as session:
        held = (await session.scalars(select(UserBadge.badge_code).where(UserBadge.user_id == user.id))).all()
        posts = await session.get(ActivityCounter, (user.id, "posts"))
    assert sorted(held) == ["first_post", "streak_30", "streak_7"]
    assert posts is not None
    assert posts.value == 2
    assert len(await notifications_of(sessions, user.id, "badge_earned")) == 3


@pytest.mark.parametrize(
    ("counter", "needed", "badge"),
    [
        ("events_attended", 1, "first_event"),
        ("events_attended", 10, "event_10"),
        ("clubs_joined", 5, "clubs_5"),
        ("clubs_created", 1, "first_club"),
        ("messages", 100, "messages_100"),
    ],
)
async def test_count_badges_need_their_threshold(
    make_user: MakeUser, sessions: Sessions, counter: str, needed: int, badge: str
) -> None:
    user = await make_user()
    earned: list[str] = []
    for i in range(needed):
        async with sessions.begin() as session:
            new = await count_activity(session, user.id, counter, cause=f"{user.id}:{counter}:{i}")
        if i < needed - 1:
            assert badge not in new
        earned += new
    assert badge in earned


async def test_leaderboard_ties_share_a_rank_and_pages_follow_the_cursor(
    make_user: MakeUser, sessions: Sessions, arq_redis: ArqRedis
) -> None:
    city = f"Tie City {uuid.uuid4().hex[:6]}"
    users = [await make_user(city=city) for _ in range(4)]
    at = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
    plan = {0: ["post_created"] * 3, 1: ["post_created"] * 3, 2: ["message_sent"], 3: ["post_created"] * 2}
    for index, reasons in plan.items():
        for n, reason in enumerate(reasons):
            assert await add_points(
                arq_redis, users[index].id, reason=reason, cause=f"{users[index].id}:{n}", at=at, city=city
            )
    assert not await add_points(
        arq_redis, users[0].id, reason="post_created", cause=f"{users[0].id}:0", at=at, city=city
    )

    board = LeaderboardService(sessions, arq_redis, clock=lambda: at)
    first = await board.page(city=city.upper(), category=None, period="week", cursor=None, limit=2)
    assert first.next_cursor is not None
    second = await board.page(city=city, category=None, period="week", cursor=first.next_cursor, limit=2)
    lines = [(e.rank, e.score) for e in first.items + second.items]
    assert lines == [(1, 30), (1, 30), (3, 20), (4, 1)]
    assert second.next_cursor is None
    assert {e.user_id for e in first.items + second.items} == {ids.encode(ids.Prefix.USER, u.id) for u in users}
    mine = await board.mine(users[3].id, city=city, category=None, period="month")
    assert (mine.rank, mine.score) == (3, 20)

    async with sessions.begin() as session:
        await snapshot_leaderboards(session, arq_redis, at)
    async with sessions() as session:
        snap = (
            await session.execute(
                select(LeaderboardSnapshot.rank, LeaderboardSnapshot.score)
                .where(LeaderboardSnapshot.board == f"{city.lower()}:all", LeaderboardSnapshot.period == "week")
                .order_by(LeaderboardSnapshot.rank, LeaderboardSnapshot.score)
            )
        ).all()
    assert [tuple(r) for r in snap] == [(1, 30), (1, 30), (3, 20), (4, 1)]


async def test_periods_roll_over_at_utc_boundaries(
    make_user: MakeUser, sessions: Sessions, arq_redis: ArqRedis
) -> None:
    city = f"Roll City {uuid.uuid4().hex[:6]}"
    user = await make_user(city=city, timezone="Pacific/Kiritimati")  # UTC+14: local time must not matter
    sunday_night = datetime(2026, 11, 29, 23, 59, tzinfo=UTC)  # Sunday of ISO week 48, last day of November
    monday = datetime(2026, 11, 30, 0, 1, tzinfo=UTC)  # week 49, still November
    december = datetime(2026, 12, 1, 0, 1, tzinfo=UTC)
    assert period_key("week", sunday_night) == "2026-W48"
    assert period_key("week", monday) == "2026-W49"
    await add_points(arq_redis, user.id, reason="post_created", cause=f"{user.id}:roll", at=sunday_night, city=city)

    def at(moment: datetime) -> LeaderboardService:
        return LeaderboardService(sessions, arq_redis, clock=lambda: moment)

    assert (await at(sunday_night).mine(user.id, city=city, category=None, period="week")).score == 10
    assert (await at(monday).mine(user.id, city=city, category=None, period="week")).rank is None
    assert (await at(monday).mine(user.id, city=city, category=None, period="month")).score == 10
    assert (await at(december).mine(user.id, city=city, category=None, period="month")).rank is None
    assert (await at(december).mine(user.id, city=city, category=None, period="all")).score == 10


async def test_another_features_events_feed_badges_streaks_and_points_through_the_job(
    make_user: MakeUser, sessions: Sessions, arq_redis: ArqRedis, drain: Drain
) -> None:
    city = f"Event City {uuid.uuid4().hex[:6]}"
    user = await make_user(city=city, timezone="UTC")
    now = datetime.now(UTC)
    post = ActivityOccurred(user_id=user.id, event_type="post.created", occurred_at=now, cause=f"outbox-{uuid.uuid4()}")
    # The same activity queued under two job ids (two relays, a replay) counts once.
    assert await ON_ACTIVITY.enqueue(arq_redis, post, cause="first")
    assert await ON_ACTIVITY.enqueue(arq_redis, post, cause="second")
    for n in range(10):
        checked_in = ActivityOccurred(
            user_id=user.id, event_type="event.checked_in", occurred_at=now, cause=f"checkin-{user.id}-{n}"
        )
        await ON_ACTIVITY.enqueue(arq_redis, checked_in, cause=checked_in.cause)

    await drain()

    badges = [b.code for b in (await BadgeService(sessions).of_user(user.id)).badges]
    assert sorted(badges) == ["event_10", "first_event", "first_post"]
    async with sessions() as session:
        attended = await session.get(ActivityCounter, (user.id, "events_attended"))
        checkin_streak = await session.get(Streak, (user.id, "daily_checkin"))
    assert attended is not None
    assert attended.value == 10
    assert checkin_streak is not None
    assert checkin_streak.current == 1
    mine = await LeaderboardService(sessions, arq_redis).mine(user.id, city=city, category=None, period="all")
    # One post (10), ten event check-ins (50 each) and the daily check-in bonus of the one day they fell on (5).
    assert mine.score == 10 + 10 * 50 + 5
    assert len(await notifications_of(sessions, user.id, "badge_earned")) == 3
