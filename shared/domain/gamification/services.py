"""Streaks, badges, points and leaderboards: REST verbs and the verbs worker jobs call."""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import msgspec
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.bus import BadgeEarned, StreakActivityRecorded, record
from shared.clock import utcnow
from shared.domain.gamification.models import (
    ActivityCounter,
    Badge,
    CountedCause,
    LeaderboardSnapshot,
    PointAward,
    Streak,
    UserBadge,
)
from shared.domain.gamification.schemas import (
    BadgeCatalog,
    BadgeInfo,
    EarnedBadge,
    LeaderboardEntry,
    MyRank,
    Period,
    StreakActivity,
    StreakCounts,
    StreakList,
    StreakView,
    UserBadges,
)
from shared.domain.notifications.services import notify
from shared.domain.users.models import User
from shared.errors import FieldError, InvalidInput, NotFound, PermissionDenied
from shared.pagination import Page, clamp_limit, decode_cursor, encode_cursor

Clock = Callable[[], datetime]

# --- streaks -----------------------------------------------------------------------------------

STREAK_KINDS = ("daily_checkin", "rsvp", "message", "overall")
OVERALL = "overall"
MAX_FUTURE = timedelta(minutes=5)
MAX_AGE = timedelta(hours=48)
REMINDER_WINDOW = (19, 21)
"""Local hours [from, to) in which a streak reminder may go out."""
REMINDER_MIN_STREAK = 2


def zone_of(name: str) -> zoneinfo.ZoneInfo:
    """The user's time zone; an unknown name (an old row) falls back to UTC."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def local_day(moment: datetime, zone: zoneinfo.ZoneInfo) -> date:
    """The calendar day ``moment`` falls on where the user lives."""
    return moment.astimezone(zone).date()


def effective_current(current: int, last_day: date, today: date) -> int:
    """A streak as of ``today``: alive while its last day is today or yesterday, else broken (0)."""
    return current if last_day >= today - timedelta(days=1) else 0


@dataclass(frozen=True, slots=True)
class StreakChange:
    """A streak after one activity; ``counted`` is False for a repeat on the same (or an earlier) day."""

    kind: str
    current: int
    longest: int
    counted: bool


async def bump_streak(session: AsyncSession, user_id: uuid.UUID, kind: str, day: date) -> StreakChange:
    """Count ``day`` toward ``user_id``'s ``kind`` streak under a row lock, so concurrent activity counts once."""
    inserted = await session.scalar(
        insert(Streak)
        .values(user_id=user_id, kind=kind, current=1, longest=1, last_day=day)
        .on_conflict_do_nothing(index_elements=["user_id", "kind"])
        .returning(Streak.current)
    )
    if inserted is not None:
        return StreakChange(kind, 1, 1, counted=True)
    row = await session.scalar(
        select(Streak)
        .where(Streak.user_id == user_id, Streak.kind == kind)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None
    if day <= row.last_day:
        # Same day again, or late activity of a day already behind us: nothing to count.
        return StreakChange(kind, row.current, row.longest, counted=False)
    row.current = row.current + 1 if day == row.last_day + timedelta(days=1) else 1
    row.longest = max(row.longest, row.current)
    row.last_day = day
    row.updated_at = utcnow()
    await session.flush()
    return StreakChange(kind, row.current, row.longest, counted=True)


async def record_streak_activity(
    session: AsyncSession, user_id: uuid.UUID, kind: str, occurred_at: datetime, zone: zoneinfo.ZoneInfo
) -> StreakChange:
    """Count an activity toward its kind and the overall streak; emits ``streak.activity_recorded`` per change."""
    day = local_day(occurred_at, zone)
    change = await bump_streak(session, user_id, kind, day)
    overall = await bump_streak(session, user_id, OVERALL, day)
    events = [
        StreakActivityRecorded(user_id=user_id, kind=c.kind, current=c.current, longest=c.longest)
        for c in (change, overall)
        if c.counted
    ]
    if events:
        await record(session, *events)
    return change


class StreakService:
    """Streak reads and writes over REST."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], reads: async_sessionmaker[AsyncSession], clock: Clock = utcnow
    ) -> None:
        self._sessions = sessions
        self._reads = reads
        self._clock = clock

    async def record(self, caller_id: uuid.UUID, user_id: uuid.UUID, activity: StreakActivity) -> StreakCounts:
        """Count an activity of the caller (only oneself: another existing user is 403)."""
        now = self._clock()
        async with self._sessions.begin() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise NotFound("no such user", code="user_not_found")
            if user_id != caller_id:
                raise PermissionDenied("you may only record your own streak activity")
            occurred = activity.occurred_at
            if occurred.tzinfo is None:
                raise InvalidInput(errors=[FieldError("occurred_at", "must include a UTC offset")])
            if occurred > now + MAX_FUTURE:
                raise InvalidInput(errors=[FieldError("occurred_at", "is more than 5 minutes in the future")])
            if occurred < now - MAX_AGE:
                raise InvalidInput(errors=[FieldError("occurred_at", "is older than 48 hours")])
            change = await record_streak_activity(session, user_id, activity.event, occurred, zone_of(user.timezone))
        return StreakCounts(current_streak=change.current, longest_streak=change.longest)

    async def list(self, user_id: uuid.UUID) -> StreakList:
        """Every kind of streak of a user, as of the user's today."""
        async with self._reads() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise NotFound("no such user", code="user_not_found")
            rows = {r.kind: r for r in (await session.scalars(select(Streak).where(Streak.user_id == user_id))).all()}
        today = local_day(self._clock(), zone_of(user.timezone))
        views = []
        for kind in STREAK_KINDS:
            row = rows.get(kind)
            if row is None:
                views.append(StreakView(kind=kind, current_streak=0, longest_streak=0, last_day=None))
            else:
                current = effective_current(row.current, row.last_day, today)
                views.append(
                    StreakView(kind=kind, current_streak=current, longest_streak=row.longest, last_day=row.last_day)
                )
        return StreakList(streaks=views)


async def send_streak_reminders(session: AsyncSession, now: datetime) -> int:
    """Notify users in their local evening whose overall streak (2+) would break without activity today.

    Safe to run as often as wanted: the notification's dedupe key is the user's local date.
    """
    # Anyone whose last active day is yesterday somewhere on Earth (UTC-12 .. UTC+14).
    utc_today = now.astimezone(UTC).date()
    rows = (
        await session.execute(
            select(Streak.user_id, Streak.current, Streak.last_day, User.timezone)
            .join(User, User.id == Streak.user_id)
            .where(
                Streak.kind == OVERALL,
                Streak.current >= REMINDER_MIN_STREAK,
                Streak.last_day >= utc_today - timedelta(days=2),
                Streak.last_day <= utc_today,
            )
        )
    ).all()
    sent = 0
    for row in rows:
        local = now.astimezone(zone_of(row.timezone))
        if not REMINDER_WINDOW[0] <= local.hour < REMINDER_WINDOW[1]:
            continue
        if row.last_day != local.date() - timedelta(days=1):
            continue
        created = await notify(
            session,
            row.user_id,
            "streak_reminder",
            {"current_streak": row.current},
            dedupe_key=f"streak_reminder:{local.date().isoformat()}",
        )
        sent += created is not None
    return sent


# --- badges ------------------------------------------------------------------------------------

COUNTER_FOR_EVENT: dict[str, str] = {
    "club.member_joined": "clubs_joined",
    "club.created": "clubs_created",
    "post.created": "posts",
    "event.checked_in": "events_attended",
    "chat.message.new": "messages",
}
"""Which badge counter a domain event feeds."""

STREAK_KIND_FOR_EVENT: dict[str, str] = {
    "rsvp.confirmed": "rsvp",
    "chat.message.new": "message",
    "rsvp.promoted": "rsvp",
    "event.checked_in": "daily_checkin",
}
"""Which streak a domain event counts toward."""

POINT_REASON_FOR_EVENT: dict[str, str] = {
    "event.checked_in": "event_checked_in",
    "rsvp.attended": "rsvp_attended",
    "post.created": "post_created",
    "chat.message.new": "message_sent",
}
"""Which rate of ``POINT_RATES`` a domain event earns."""

BEST_STREAK = "best_streak"


async def _award(session: AsyncSession, user_id: uuid.UUID, counter: str, value: int) -> list[str]:
    """Award every badge of ``counter`` whose threshold ``value`` reaches; each badge once, even under races."""
    badges = (await session.scalars(select(Badge).where(Badge.counter == counter, Badge.threshold <= value))).all()
    awarded = []
    for badge in badges:
        new = await session.scalar(
            insert(UserBadge)
            .values(user_id=user_id, badge_code=badge.code)
            .on_conflict_do_nothing(index_elements=["user_id", "badge_code"])
            .returning(UserBadge.badge_code)
        )
        if new is None:
            continue
        awarded.append(badge.code)
        await record(session, BadgeEarned(user_id=user_id, badge_code=badge.code))
        await notify(
            session,
            user_id,
            "badge_earned",
            {"badge_code": badge.code, "badge_name": badge.name, "badge_description": badge.description},
            dedupe_key=f"badge:{badge.code}",
        )
    return awarded


async def count_activity(
    session: AsyncSession, user_id: uuid.UUID, counter: str, *, cause: str, amount: int = 1
) -> list[str]:
    """Add ``amount`` to a counter once per ``cause`` and award the badges it reaches; returns new badge codes."""
    first = await session.scalar(
        insert(CountedCause)
        .values(cause=cause, purpose=f"counter:{counter}")
        .on_conflict_do_nothing(index_elements=["cause", "purpose"])
        .returning(CountedCause.cause)
    )
    if first is None:
        return []
    stmt = insert(ActivityCounter).values(user_id=user_id, counter=counter, value=amount)
    value = await session.scalar(
        stmt.on_conflict_do_update(
            index_elements=["user_id", "counter"], set_={"value": ActivityCounter.value + amount}
        ).returning(ActivityCounter.value)
    )
    assert value is not None
    return await _award(session, user_id, counter, value)


async def raise_counter(session: AsyncSession, user_id: uuid.UUID, counter: str, value: int) -> list[str]:
    """Raise a high-water counter (the best streak) to ``value`` and award what it reaches; idempotent."""
    stmt = insert(ActivityCounter).values(user_id=user_id, counter=counter, value=value)
    current = await session.scalar(
        stmt.on_conflict_do_update(
            index_elements=["user_id", "counter"],
            set_={"value": func.greatest(ActivityCounter.value, stmt.excluded.value)},
        ).returning(ActivityCounter.value)
    )
    assert current is not None
    return await _award(session, user_id, counter, current)


@dataclass(frozen=True, slots=True)
class Activity:
    """Another feature's domain event as gamification sees it: who did what, when, where."""

    user_id: uuid.UUID
    event_type: str
    occurred_at: datetime
    cause: str
    category: str | None = None


@dataclass(frozen=True, slots=True)
class ActivityOutcome:
    """What one activity changed."""

    badges: list[str]
    streak: StreakChange | None
    points_added: bool


async def apply_activity(session: AsyncSession, redis: Redis, activity: Activity) -> ActivityOutcome:
    """Feed an activity to the badge counters, streaks and points its event type maps to; idempotent per cause."""
    badges: list[str] = []
    counter = COUNTER_FOR_EVENT.get(activity.event_type)
    if counter is not None:
        badges = await count_activity(session, activity.user_id, counter, cause=activity.cause)
    streak = None
    kind = STREAK_KIND_FOR_EVENT.get(activity.event_type)
    if kind is not None:
        user = await session.get(User, activity.user_id)
        if user is not None:
            streak = await record_streak_activity(
                session, activity.user_id, kind, activity.occurred_at, zone_of(user.timezone)
            )
    added = False
    reason = POINT_REASON_FOR_EVENT.get(activity.event_type)
    if reason is not None:
        added = await award_points(
            session,
            redis,
            activity.user_id,
            reason=reason,
            cause=f"{activity.cause}:points",
            at=activity.occurred_at,
            category=activity.category,
        )
    return ActivityOutcome(badges=badges, streak=streak, points_added=added)


class BadgeService:
    """The badge catalog and a user's badges."""

    def __init__(self, reads: async_sessionmaker[AsyncSession]) -> None:
        self._reads = reads

    async def catalog(self) -> BadgeCatalog:
        """Every badge."""
        async with self._reads() as session:
            rows = (await session.scalars(select(Badge).order_by(Badge.counter, Badge.threshold, Badge.code))).all()
        return BadgeCatalog(
            badges=[
                BadgeInfo(code=b.code, name=b.name, description=b.description, criteria=f"{b.counter} >= {b.threshold}")
                for b in rows
            ]
        )

    async def of_user(self, user_id: uuid.UUID) -> UserBadges:
        """A user's badges, oldest first; 404 for no such user."""
        async with self._reads() as session:
            if await session.scalar(select(User.id).where(User.id == user_id)) is None:
                raise NotFound("no such user", code="user_not_found")
            rows = (
                await session.execute(
                    select(UserBadge.badge_code, UserBadge.earned_at, Badge.name)
                    .join(Badge, Badge.code == UserBadge.badge_code)
                    .where(UserBadge.user_id == user_id)
                    .order_by(UserBadge.earned_at, UserBadge.badge_code)
                )
            ).all()
        return UserBadges(badges=[EarnedBadge(code=r.badge_code, name=r.name, earned_at=r.earned_at) for r in rows])


# --- points and leaderboards -------------------------------------------------------------------

POINT_RATES: dict[str, int] = {
    "daily_checkin": 5,
    "event_checked_in": 50,
    "rsvp_attended": 20,
    "post_created": 10,
    "message_sent": 1,
}
"""Points per reason: the one table of rates."""

ALL = "all"
_BOARD_PREFIX = "tribe:lb"
_PERIOD_TTL_S = 400 * 24 * 3600
_CAUSE_TTL_S = 400 * 24 * 3600

# Marks the cause and adds to every board in one step, so a job run twice (or racing) adds once.
_AWARD_SCRIPT = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then
  for i = 2, #KEYS do
    redis.call('ZINCRBY', KEYS[i], ARGV[1], ARGV[2])
    if string.find(KEYS[i], ':all:', 1, true) == nil then
      redis.call('EXPIRE', KEYS[i], ARGV[4])
    end
  end
  return 1
end
return 0
"""


def parse_period(value: str) -> Period:
    """A ``period`` query value; anything but week, month or all is 422."""
    periods: dict[str, Period] = {"week": "week", "month": "month", "all": "all"}
    if value in periods:
        return periods[value]
    raise InvalidInput(errors=[FieldError("period", "must be week, month or all")])


def normalize_board_part(value: str | None) -> str:
    """A city or category as a board key part: trimmed, lower case, ``all`` when absent."""
    cleaned = " ".join((value or "").split()).lower()
    return cleaned or ALL


def period_key(period: Period, at: datetime) -> str:
    """The key of the period containing ``at``; weeks are ISO weeks and all periods roll over at UTC midnight."""
    utc = at.astimezone(UTC)
    if period == "week":
        year, week, _ = utc.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{utc.year}-{utc.month:02d}"
    return ALL


def board_key(period: Period, key: str, city: str, category: str) -> str:
    """The Redis sorted set of one board."""
    return f"{_BOARD_PREFIX}:{period}:{key}:{city}:{category}"


async def add_points(
    redis: Redis,
    user_id: uuid.UUID,
    *,
    reason: str,
    cause: str,
    at: datetime,
    city: str | None,
    category: str | None = None,
) -> bool:
    """Add ``reason``'s points to every board the user's city and the category belong to, once per ``cause``."""
    points = POINT_RATES[reason]
    cities = {normalize_board_part(city), ALL}
    categories = {normalize_board_part(category), ALL}
    periods: tuple[Period, ...] = ("week", "month", "all")
    keys = [
        board_key(period, period_key(period, at), c, k)
        for period in periods
        for c in sorted(cities)
        for k in sorted(categories)
    ]
    added = await redis.eval(  # type: ignore[misc]
        _AWARD_SCRIPT,
        1 + len(keys),
        f"{_BOARD_PREFIX}:cause:{cause}",
        *keys,
        str(points),
        str(user_id),
        str(_CAUSE_TTL_S),
        str(_PERIOD_TTL_S),
    )
    return bool(added)


async def award_points(
    session: AsyncSession,
    redis: Redis,
    user_id: uuid.UUID,
    *,
    reason: str,
    cause: str,
    at: datetime,
    category: str | None = None,
) -> bool:
    """Record points in the ledger and on the Redis boards; a repeated cause adds nothing anywhere."""
    user = await session.get(User, user_id)
    if user is None:
        return False
    await session.execute(
        insert(PointAward)
        .values(
            user_id=user_id,
            cause=cause,
            reason=reason,
            points=POINT_RATES[reason],
            city=user.city,
            category=category,
            awarded_at=at,
        )
        .on_conflict_do_nothing(index_elements=["cause"])
    )
    return await add_points(redis, user_id, reason=reason, cause=cause, at=at, city=user.city, category=category)


class BoardCursor(msgspec.Struct, array_like=True):
    """Keyset of a leaderboard page: the last score and member seen."""

    score: int
    member: str


class LeaderboardService:
    """Reads of the Redis leaderboards."""

    def __init__(self, reads: async_sessionmaker[AsyncSession], redis: Redis, clock: Clock = utcnow) -> None:
        self._reads = reads
        self._redis = redis
        self._clock = clock

    def _key(self, city: str | None, category: str | None, period: Period) -> str:
        return board_key(
            period, period_key(period, self._clock()), normalize_board_part(city), normalize_board_part(category)
        )

    async def page(
        self, *, city: str | None, category: str | None, period: Period, cursor: str | None, limit: int | None
    ) -> Page[LeaderboardEntry]:
        """One page of a board, best first; equal scores share a rank."""
        size = clamp_limit(limit)
        key = self._key(city, category, period)
        start = 0
        if cursor is not None:
            after = decode_cursor(cursor, BoardCursor)
            position = await self._redis.zrevrank(key, after.member)
            score = await self._redis.zscore(key, after.member)
            if position is not None and score is not None and int(score) == after.score:
                start = position + 1
            else:
                # The member moved: continue after everyone who scores at least the cursor's score.
                start = await self._redis.zcount(key, after.score, "+inf")
        rows: list[tuple[bytes, float]] = await self._redis.zrevrange(key, start, start + size, withscores=True)
        entries = await self._entries(key, rows[:size])
        next_cursor = None
        if len(rows) > size and entries:
            last = rows[size - 1]
            next_cursor = encode_cursor(BoardCursor(score=int(last[1]), member=last[0].decode()))
        return Page(items=entries, next_cursor=next_cursor)

    async def mine(self, user_id: uuid.UUID, *, city: str | None, category: str | None, period: Period) -> MyRank:
        """The caller's rank and score on a board."""
        key = self._key(city, category, period)
        score = await self._redis.zscore(key, str(user_id))
        async with self._reads() as session:
            name = await session.scalar(select(User.display_name).where(User.id == user_id))
        public = ids.encode(ids.Prefix.USER, user_id)
        if score is None:
            return MyRank(rank=None, user_id=public, display_name=name or "", score=0)
        rank = await self._rank(key, int(score))
        return MyRank(rank=rank, user_id=public, display_name=name or "", score=int(score))

    async def _rank(self, key: str, score: int) -> int:
        higher: int = await self._redis.zcount(key, f"({score}", "+inf")
        return higher + 1

    async def _entries(self, key: str, rows: Sequence[tuple[bytes, float]]) -> list[LeaderboardEntry]:
        if not rows:
            return []
        user_ids = [uuid.UUID(member.decode()) for member, _ in rows]
        async with self._reads() as session:
            names = dict((await session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids)))).all())
        entries = []
        rank_of: dict[int, int] = {}
        for (_member, raw), user_id in zip(rows, user_ids, strict=True):
            score = int(raw)
            if score not in rank_of:
                rank_of[score] = await self._rank(key, score)
            entries.append(
                LeaderboardEntry(
                    rank=rank_of[score],
                    user_id=ids.encode(ids.Prefix.USER, user_id),
                    display_name=names.get(user_id, ""),
                    score=score,
                )
            )
        return entries


async def snapshot_leaderboards(session: AsyncSession, redis: Redis, now: datetime, *, top: int = 100) -> int:
    """Copy the top of every current board into ``leaderboard_snapshots``; re-running updates the same rows."""
    written = 0
    periods: tuple[Period, ...] = ("week", "month", "all")
    for period in periods:
        current = period_key(period, now)
        async for raw_key in redis.scan_iter(match=f"{_BOARD_PREFIX}:{period}:{current}:*", count=500):
            key = raw_key.decode()
            board = key.split(":", 4)[4]
            rows: list[tuple[bytes, float]] = await redis.zrevrange(key, 0, top - 1, withscores=True)
            values = []
            rank, previous = 0, None
            for position, (member, raw) in enumerate(rows, start=1):
                score = int(raw)
                if score != previous:
                    rank, previous = position, score
                values.append(
                    {
                        "board": board,
                        "period": period,
                        "period_key": current,
                        "user_id": uuid.UUID(member.decode()),
                        "rank": rank,
                        "score": score,
                        "taken_at": now,
                    }
                )
            if values:
                stmt = insert(LeaderboardSnapshot).values(values)
                await session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["board", "period_key", "user_id"],
                        set_={"rank": stmt.excluded.rank, "score": stmt.excluded.score, "taken_at": now},
                    )
                )
                written += len(values)
    return written


async def badges_summary(session: AsyncSession, user_id: uuid.UUID) -> list[tuple[str, datetime]]:
    """``(code, earned_at)`` of a user's badges, for the profile (one query)."""
    rows = (
        await session.execute(
            select(UserBadge.badge_code, UserBadge.earned_at)
            .where(UserBadge.user_id == user_id)
            .order_by(UserBadge.earned_at, UserBadge.badge_code)
        )
    ).all()
    return [(r.badge_code, r.earned_at) for r in rows]
