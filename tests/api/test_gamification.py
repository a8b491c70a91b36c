"""``/v1/streaks``, ``/v1/badges``, ``/v1/leaderboards`` and profile badges through real HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.bus import OutboxRow
from shared.domain.gamification.models import Streak
from shared.domain.gamification.services import add_points, count_activity
from tests.api.conftest import MakeAccount
from tests.api.test_notifications import assert_problem

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def redis(engine_env: dict[str, str]) -> AsyncIterator[Redis]:
    """A Redis client on the session's Redis."""
    client = Redis.from_url(engine_env["TRIBE_REDIS_URL"])
    yield client
    await client.aclose()


def now_iso(delta: timedelta = timedelta()) -> str:
    """An ``occurred_at`` relative to the real clock (the API process runs on it)."""
    return (datetime.now(UTC) + delta).isoformat()


async def test_streak_post_and_get(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    me = await make_account()

    first = await client.post(
        f"/v1/streaks/{me.id}", json={"event": "daily_checkin", "occurred_at": now_iso()}, headers=me.headers
    )
    assert first.status_code == 200, first.text
    assert first.json() == {"current_streak": 1, "longest_streak": 1}
    repeat = await client.post(
        f"/v1/streaks/{me.id}", json={"event": "daily_checkin", "occurred_at": now_iso()}, headers=me.headers
    )
    assert repeat.json() == {"current_streak": 1, "longest_streak": 1}

    shown = await client.get(f"/v1/streaks/{me.id}", headers=me.headers)
    assert shown.status_code == 200
    by_kind = {s["kind"]: s for s in shown.json()["streaks"]}
    assert set(by_kind) == {"daily_checkin", "rsvp", "message", "overall"}
    assert by_kind["daily_checkin"]["current_streak"] == 1
    assert by_kind["daily_checkin"]["last_day"] is not None
    assert by_kind["overall"]["current_streak"] == 1
    assert by_kind["rsvp"] == {"kind": "rsvp", "current_streak": 0, "longest_streak": 0, "last_day": None}


async def test_streaks_of_others(client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions) -> None:
    me, other = await make_account(), await make_account()
    body = {"event": "rsvp", "occurred_at": now_iso()}

    assert_problem(await client.post(f"/v1/streaks/{other.id}", json=body, headers=me.headers), 403)
    missing = ids.encode(ids.Prefix.USER, uuid.uuid4())
    assert_problem(await client.post(f"/v1/streaks/{missing}", json=body, headers=me.headers), 404)
    assert_problem(await client.post("/v1/streaks/club_abc", json=body, headers=me.headers), 404)
    assert (await client.get(f"/v1/streaks/{other.id}", headers=me.headers)).status_code == 200
    assert_problem(await client.get(f"/v1/streaks/{missing}", headers=me.headers), 404)
    async with db() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Streak).where(Streak.user_id == ids.decode(ids.Prefix.USER, other.id))
        )
    assert stored == 0


@pytest.mark.parametrize(
    "body",
    [
        {"event": "daily_checkin", "occurred_at": "FUTURE"},
        {"event": "daily_checkin", "occurred_at": "PAST"},
        {"event": "jogging", "occurred_at": "NOW"},
        {"event": "daily_checkin"},
        {"event": "daily_checkin", "occurred_at": "yesterday"},
        {"event": "daily_checkin", "occurred_at": "NOW", "current_streak": 99},
    ],
)
async def test_bad_streak_input_is_422_and_stores_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions, body: dict[str, str]
) -> None:
    me = await make_account()
    moments = {"FUTURE": now_iso(timedelta(minutes=6)), "PAST": now_iso(-timedelta(hours=49)), "NOW": now_iso()}
    sent = {k: moments.get(v, v) for k, v in body.items()}
    assert_problem(await client.post(f"/v1/streaks/{me.id}", json=sent, headers=me.headers), 422)
    async with db() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Streak).where(Streak.user_id == ids.decode(ids.Prefix.USER, me.id))
        )
    assert stored == 0


async def test_concurrent_streak_posts_count_once(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    me = await make_account()
    body = {"event": "message", "occurred_at": now_iso()}
    answers = await asyncio.gather(
        *(client.post(f"/v1/streaks/{me.id}", json=body, headers=me.headers) for _ in range(6))
    )
    assert {(a.status_code, a.json()["current_streak"]) for a in answers} == {(200, 1)}


async def test_badge_catalog_user_badges_and_profile(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    me, other = await make_account(), await make_account()
    catalog = (await client.get("/v1/badges", headers=me.headers)).json()["badges"]
    by_code = {b["code"]: b for b in catalog}
    assert {
        "first_post",
        "first_event",
        "event_10",
        "clubs_5",
        "streak_7",
        "streak_30",
        "first_club",
        "messages_100",
    } <= set(by_code)
    assert by_code["event_10"]["name"] == "Event Enthusiast"
    assert by_code["event_10"]["criteria"] == "events_attended >= 10"

    assert (await client.get(f"/v1/badges/{me.id}", headers=other.headers)).json() == {"badges": []}
    async with db.begin() as session:
        await count_activity(session, ids.decode(ids.Prefix.USER, me.id), "posts", cause=f"test:{me.id}")

    mine = (await client.get(f"/v1/badges/{me.id}", headers=other.headers)).json()["badges"]
    assert [(b["code"], b["name"]) for b in mine] == [("first_post", "First Post")]
    own = (await client.get("/v1/users/me", headers=me.headers)).json()
    public = (await client.get(f"/v1/users/{me.id}", headers=other.headers)).json()
    assert [b["code"] for b in own["badges"]] == [b["code"] for b in public["badges"]] == ["first_post"]
    assert own["badges"][0]["earned_at"] == mine[0]["earned_at"]
    assert_problem(await client.get(f"/v1/badges/{ids.encode(ids.Prefix.USER, uuid.uuid4())}", headers=me.headers), 404)
    assert_problem(await client.get("/v1/badges", headers={}), 401)


async def test_leaderboards_over_http(client: httpx.AsyncClient, make_account: MakeAccount, redis: Redis) -> None:
    city = f"Http City {uuid.uuid4().hex[:6]}"
    a, b, c = [await make_account(city=city) for _ in range(3)]
    now = datetime.now(UTC)
    for account, reasons in (
        (a, ["post_created", "post_created"]),
        (b, ["post_created", "post_created"]),
        (c, ["message_sent"]),
    ):
        for n, reason in enumerate(reasons):
            await add_points(
                redis,
                ids.decode(ids.Prefix.USER, account.id),
                reason=reason,
                cause=f"{account.id}:{n}",
                at=now,
                city=city,
            )

    board = await client.get("/v1/leaderboards", params={"city": city, "period": "week"}, headers=a.headers)
    assert board.status_code == 200, board.text
    items = board.json()["items"]
    assert [(i["rank"], i["score"]) for i in items] == [(1, 20), (1, 20), (3, 1)]
    assert {i["user_id"] for i in items[:2]} == {a.id, b.id}
    assert items[2] == {"rank": 3, "user_id": c.id, "display_name": "Test User", "score": 1}
    paged = await client.get("/v1/leaderboards", params={"city": city, "limit": 2}, headers=a.headers)
    assert paged.json()["next_cursor"] is not None
    rest = await client.get(
        "/v1/leaderboards", params={"city": city, "limit": 2, "cursor": paged.json()["next_cursor"]}, headers=a.headers
    )
    assert [i["user_id"] for i in rest.json()["items"]] == [c.id]

    me = await client.get("/v1/leaderboards/me", params={"city": city, "period": "all"}, headers=c.headers)
    assert me.json() == {"rank": 3, "user_id": c.id, "display_name": "Test User", "score": 1}
    nobody = await make_account()
    empty = await client.get("/v1/leaderboards/me", params={"city": city}, headers=nobody.headers)
    assert (empty.json()["rank"], empty.json()["score"]) == (None, 0)

    assert_problem(await client.get("/v1/leaderboards", params={"period": "year"}, headers=a.headers), 422)
    assert_problem(await client.get("/v1/leaderboards", params={"cursor": "zzz"}, headers=a.headers), 422)


async def test_streak_posts_emit_one_event_per_counted_day(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    me = await make_account()
    user_id = str(ids.decode(ids.Prefix.USER, me.id))
    for _ in range(2):
        answer = await client.post(
            f"/v1/streaks/{me.id}", json={"event": "rsvp", "occurred_at": now_iso()}, headers=me.headers
        )
        assert answer.status_code == 200
    async with db() as session:
        rows = (
            await session.scalars(
                select(OutboxRow).where(
                    OutboxRow.event_type == "streak.activity_recorded", OutboxRow.payload["user_id"].astext == user_id
                )
            )
        ).all()
    assert sorted((r.payload["kind"], r.payload["current"]) for r in rows) == [("overall", 1), ("rsvp", 1)]
