"""Recommendation refresh: idempotent and serialised per user, the burst-worker job, debounced signals, the sweep."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import FriendAccepted, RsvpConfirmed
from shared.clock import utcnow
from shared.domain.discovery.engine import active_user_ids, refresh_user
from shared.domain.discovery.models import Recommendation, RecommendationRun
from shared.domain.events.models import Event, Rsvp
from shared.domain.social.models import Friendship
from shared.domain.users.models import User
from tests.workers.conftest import Drain, MakeUser
from workers.enqueue import enqueue_for_event
from workers.jobs.discovery import (
    DEBOUNCE_S,
    PENDING_REFRESHES_KEY,
    REFRESH_RECOMMENDATIONS,
    RefreshRecommendations,
    queue_due_refreshes,
)

Sessions = async_sessionmaker[AsyncSession]


async def _community(sessions: Sessions, make_user: MakeUser) -> tuple[User, User, uuid.UUID]:
    """A viewer, a friend going to an event in the viewer's city, and two strangers sharing an interest."""
    city, interest = f"Jobtown {uuid.uuid4().hex[:6]}", f"j{uuid.uuid4().hex[:8]}"
    me = await make_user(city=city, interests=[interest], last_active_at=utcnow())
    friend = await make_user(city=city)
    await make_user(city=city, interests=[interest])
    await make_user(city=city, interests=[interest, "x"])
    organizer = await make_user()
    start = utcnow() + timedelta(days=2)
    event_id = uuid.uuid4()
    async with sessions.begin() as session:
        low, high = sorted([me.id, friend.id])
        await session.execute(insert(Friendship).values(user_low_id=low, user_high_id=high, created_at=utcnow()))
        await session.execute(
            insert(Event).values(
                id=event_id,
                organizer_id=organizer.id,
                slug=f"job-{event_id.hex}",
                title="Job event",
                start_time=start,
                end_time=start + timedelta(hours=2),
                timezone="UTC",
                location_name="Here",
                latitude=10.0,
                longitude=10.0,
                city=city,
                address_visibility="public",
                tags=[interest],
                visibility="public",
                kind="event",
                ticket_type="free",
                currency="USD",
                status="published",
                published_at=utcnow(),
            )
        )
        await session.execute(insert(Rsvp).values(event_id=event_id, user_id=friend.id, status="confirmed"))
    return me, friend, event_id


async def _rows(sessions: Sessions, user_id: uuid.UUID) -> list[tuple[str, uuid.UUID, float, str]]:
    async with sessions() as session:
        result = await session.execute(
            select(Recommendation.kind, Recommendation.target_id, Recommendation.score, Recommendation.reason)
            .where(Recommendation.user_id == user_id)
            .order_by(Recommendation.kind, Recommendation.target_id)
        )
        return [(k, t, s, r) for k, t, s, r in result.all()]


async def test_refresh_is_idempotent_and_concurrent_refreshes_serialise(
    sessions: Sessions, make_user: MakeUser
) -> None:
    me, _friend, event_id = await _community(sessions, make_user)
    now = utcnow()

    async def refresh() -> bool:
        async with sessions.begin() as session:
            return await refresh_user(session, me.id, now, "signal")

    assert await refresh()
    first = await _rows(sessions, me.id)
    assert [(r[1], r[3]) for r in first if r[0] == "event"] == [(event_id, "Friends attending")]
    assert sum(1 for r in first if r[0] == "person") == 2
    assert await refresh()
    assert await _rows(sessions, me.id) == first
    # Two at once: the advisory lock serialises them, so neither trips over the other's rows.
    assert list(await asyncio.gather(refresh(), refresh())) == [True, True]
    assert await _rows(sessions, me.id) == first
    async with sessions() as session:
        runs = list(await session.scalars(select(RecommendationRun).where(RecommendationRun.user_id == me.id)))
    assert len(runs) == 4
    assert all(r.event_count == 1 and r.person_count == 2 for r in runs)


async def test_refresh_job_runs_on_a_burst_worker(
    sessions: Sessions, make_user: MakeUser, arq_redis: ArqRedis, drain: Drain
) -> None:
    me, _friend, event_id = await _community(sessions, make_user)
    assert await REFRESH_RECOMMENDATIONS.enqueue(arq_redis, RefreshRecommendations(user_id=me.id), cause="t1")
    assert not await REFRESH_RECOMMENDATIONS.enqueue(arq_redis, RefreshRecommendations(user_id=me.id), cause="t1")
    assert await drain() >= 1
    rows = await _rows(sessions, me.id)
    assert any(r[1] == event_id for r in rows)
    async with sessions() as session:
        triggers = list(
            await session.scalars(select(RecommendationRun.trigger).where(RecommendationRun.user_id == me.id))
        )
    assert triggers == ["signal"]


async def test_signal_events_queue_one_debounced_refresh_per_user(
    make_user: MakeUser, arq_redis: ArqRedis, queue_name: str
) -> None:
    a = await make_user()
    b = await make_user()
    accepted = FriendAccepted(request_id=uuid.uuid4(), requester_id=a.id, accepter_id=b.id)
    rsvp = RsvpConfirmed(event_id=uuid.uuid4(), rsvp_id=uuid.uuid4(), user_id=a.id)
    before = time.time()
    await enqueue_for_event(arq_redis, accepted, cause=uuid.uuid4())
    await enqueue_for_event(arq_redis, rsvp, cause=uuid.uuid4())

    async def queued_for() -> list[str]:
        jobs = [j.decode() for j in await arq_redis.zrange(queue_name, 0, -1)]
        return sorted(
            j.split(":")[1]
            for j in jobs
            if j.startswith(f"{REFRESH_RECOMMENDATIONS.name}:") and j.split(":")[1] in {str(a.id), str(b.id)}
        )

    # Nothing is queued while the window is open; each user waits once, until its end.
    assert await queued_for() == []
    for user in (a, b):
        ends = await arq_redis.zscore(PENDING_REFRESHES_KEY, str(user.id))
        assert ends is not None
        assert before + DEBOUNCE_S <= ends <= time.time() + DEBOUNCE_S
    await queue_due_refreshes(arq_redis, before + DEBOUNCE_S / 2)
    assert await queued_for() == []

    # When it ends, a's two signals are one refresh and b gets its own, queued due now.
    await queue_due_refreshes(arq_redis, time.time() + DEBOUNCE_S + 1)
    assert await queued_for() == sorted([str(a.id), str(b.id)])
    for user in (a, b):
        assert await arq_redis.zscore(PENDING_REFRESHES_KEY, str(user.id)) is None
    for job_id in [j.decode() for j in await arq_redis.zrange(queue_name, 0, -1)]:
        if str(a.id) in job_id or str(b.id) in job_id:
            assert await Job(job_id, arq_redis, _queue_name=queue_name).status() == JobStatus.queued


async def test_the_sweep_picks_recently_active_users_without_a_fresh_list(
    sessions: Sessions, make_user: MakeUser
) -> None:
    now = utcnow()
    active = await make_user(last_active_at=now - timedelta(days=3))
    dormant = await make_user(last_active_at=now - timedelta(days=45))
    fresh = await make_user(last_active_at=now - timedelta(hours=1))
    async with sessions.begin() as session:
        await refresh_user(session, fresh.id, now, "cron")
    async with sessions() as session:
        picked = set(await active_user_ids(session, now, stale_after=timedelta(minutes=50), cap=1_000_000))
    assert active.id in picked
    assert dormant.id not in picked
    assert fresh.id not in picked
