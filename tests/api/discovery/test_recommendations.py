"""Recommendations on a hand-built community whose right answers are known."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.clubs.models import Club
from shared.domain.discovery.models import Recommendation, RecommendationDismissal, RecommendationRun, RunTrigger
from shared.domain.discovery.services import DiscoveryService
from shared.domain.events.models import Event
from shared.domain.users.models import User
from tests.api.conftest import MakeAccount
from tests.api.discovery.support import befriend, event_recs, people_recs, tag, town
from tests.api.events.helpers import create_event, grant_role, make_organizer, rsvp
from tests.api.social.helpers import count, problem

Sessions = async_sessionmaker[AsyncSession]


def _uid(public_id: str) -> object:
    return ids.decode(ids.Prefix.USER, public_id)


async def test_friends_attending_ranks_first_and_full_or_past_events_are_left_out(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    city, interest = town(), tag()
    me = await make_account(city=city, interests=[interest])
    friend = await make_account(city=city)
    filler = await make_account(city=city)
    organizer = await make_organizer(make_account, db)
    await befriend(client, me, friend)
    loc = {"name": "Park", "latitude": 30.27, "longitude": -97.74, "city": city}
    with_friend = await create_event(client, organizer, location=loc, tags=["misc"])
    by_interest = await create_event(client, organizer, location=loc, tags=[interest])
    plain = await create_event(client, organizer, location=loc, tags=["misc"])
    full = await create_event(client, organizer, location=loc, tags=[interest], capacity=1)
    past = await create_event(client, organizer, location=loc, tags=[interest])
    await rsvp(client, with_friend, friend)
    await rsvp(client, full, filler)
    async with db.begin() as session:
        # An event that has already started cannot be created through the API; move one back in time.
        await session.execute(
            update(Event)
            .where(Event.id == ids.decode(ids.Prefix.EVENT, past))
            .values(start_time=Event.start_time - timedelta(days=10), end_time=Event.end_time - timedelta(days=10))
        )

    items = await event_recs(client, me)

    got = [i["id"] for i in items]
    assert got[0] == with_friend
    assert items[0]["reason"] == "Friends attending"
    assert by_interest in got
    assert plain in got
    assert next(i for i in items if i["id"] == by_interest)["reason"] == f"Matches your interest in {interest}"
    assert full not in got
    assert past not in got
    assert all(0 <= i["score"] <= 1 for i in items)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    # Served from the table after a cold start on this first read.
    async with db() as session:
        triggers = list(
            await session.scalars(select(RecommendationRun.trigger).where(RecommendationRun.user_id == _uid(me.id)))
        )
    assert triggers == [RunTrigger.COLD_START.value]


async def test_cursor_pages_cover_the_list_once_and_bad_input_is_refused(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    city = town()
    me = await make_account(city=city)
    organizer = await make_organizer(make_account, db)
    loc = {"name": "Hall", "latitude": 30.27, "longitude": -97.74, "city": city}
    made = {await create_event(client, organizer, location=loc) for _ in range(5)}
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/events/recommendations", params=params, headers=me.headers)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made)
    problem(await client.get("/v1/events/recommendations", params={"cursor": "nope"}, headers=me.headers), 422)
    problem(await client.get("/v1/events/recommendations", params={"time_range": "year"}, headers=me.headers), 422)
    problem(await client.get("/v1/events/recommendations", params={"limit": 0}, headers=me.headers), 422)
    week = await event_recs(client, me, time_range="week", city=city)
    assert {i["id"] for i in week} == made  # all start in three days
    assert await event_recs(client, me, premium_only="true") == []


async def test_people_exclude_friends_blocks_and_pending_and_only_the_owner_may_look(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    city, interest = town(), tag()
    me = await make_account(city=city, interests=[interest, "coffee"])
    match = await make_account(city=city, interests=[interest], display_name="Match")
    friend = await make_account(city=city, interests=[interest])
    blocked = await make_account(city=city, interests=[interest])
    pending = await make_account(city=city, interests=[interest])
    later_blocked = await make_account(city=city, interests=[interest])
    await befriend(client, me, friend)
    assert (await client.post(f"/v1/users/{blocked.id}/block", headers=me.headers)).status_code in (200, 201)
    sent = await client.post("/v1/friends/requests", json={"user_id": me.id}, headers=pending.headers)
    assert sent.status_code in (200, 201)

    items = await people_recs(client, me)

    ids_ = [i["id"] for i in items]
    assert match.id in ids_
    assert later_blocked.id in ids_
    assert friend.id not in ids_
    assert blocked.id not in ids_
    assert pending.id not in ids_
    assert me.id not in ids_
    mine = next(i for i in items if i["id"] == match.id)
    assert mine["mutual_interests"] == [interest]
    assert 0 < mine["compatibility_score"] <= 1
    assert interest in mine["icebreaker_prompt"]
    # A block made after the refresh takes effect on the next read, either direction.
    assert (await client.post(f"/v1/users/{me.id}/block", headers=later_blocked.headers)).status_code in (200, 201)
    assert later_blocked.id not in [i["id"] for i in await people_recs(client, me)]
    # Someone else's list is refused.
    problem(await client.get(f"/v1/users/{match.id}/recommendations", headers=me.headers), 403)
    problem(await client.get("/v1/users/evt_nope/recommendations", headers=me.headers), 404)


async def test_a_dismissed_item_never_returns_even_after_a_refresh(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    city, interest = town(), tag()
    me = await make_account(city=city, interests=[interest])
    other = await make_account(city=city, interests=[interest])
    organizer = await make_organizer(make_account, db)
    loc = {"name": "Cafe", "latitude": 30.27, "longitude": -97.74, "city": city}
    event = await create_event(client, organizer, location=loc, tags=[interest])
    assert event in [i["id"] for i in await event_recs(client, me)]
    assert other.id in [i["id"] for i in await people_recs(client, me)]

    for body in ({"kind": "event", "id": event}, {"kind": "person", "id": other.id}):
        response = await client.post("/v1/recommendations/dismiss", json=body, headers=me.headers)
        assert response.status_code == 200, response.text
    again = await client.post("/v1/recommendations/dismiss", json={"kind": "event", "id": event}, headers=me.headers)
    assert again.status_code == 200  # repeat is harmless

    await DiscoveryService(db).refresh(_uid(me.id), RunTrigger.SIGNAL)  # type: ignore[arg-type]
    assert event not in [i["id"] for i in await event_recs(client, me)]
    assert other.id not in [i["id"] for i in await people_recs(client, me)]
    assert await count(db, RecommendationDismissal, RecommendationDismissal.user_id == _uid(me.id)) == 2
    assert await count(db, Recommendation, Recommendation.target_id == ids.decode(ids.Prefix.EVENT, event)) == 0


async def test_dismiss_bad_input_stores_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    me = await make_account()
    bad = [
        {"kind": "planet", "id": me.id},
        {"kind": "event", "id": me.id},
        {"kind": "person", "id": me.id},
        {"kind": "event"},
    ]
    for body in bad:
        problem(await client.post("/v1/recommendations/dismiss", json=body, headers=me.headers), 422)
    missing = ids.encode(ids.Prefix.EVENT, ids.uuid7())
    problem(
        await client.post("/v1/recommendations/dismiss", json={"kind": "event", "id": missing}, headers=me.headers), 404
    )
    problem(await client.post("/v1/recommendations/dismiss", content=b"{", headers=me.headers), 400)
    assert await count(db, RecommendationDismissal, RecommendationDismissal.user_id == _uid(me.id)) == 0


async def test_clubs_for_you_match_interests_and_leave_out_clubs_you_are_in(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    city, interest = town(), tag()
    owner = await make_account(city=city)
    me = await make_account(city=city, interests=[interest])
    made = []
    for name in ("Alpha Club", "Beta Club"):
        response = await client.post(
            "/v1/clubs",
            json={"name": f"{name} {interest}", "city": city, "tags": [interest], "privacy_level": "public"},
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
    joined = await client.post(f"/v1/clubs/{made[1]}/join", headers=me.headers)
    assert joined.status_code in (200, 201), joined.text
    response = await client.get("/v1/clubs/recommendations", headers=me.headers)
    assert response.status_code == 200, response.text
    got = {i["id"]: i for i in response.json()["items"]}
    assert made[0] in got
    assert made[1] not in got
    assert got[made[0]]["reason"] == f"Matches your interest in {interest}"


async def test_premium_and_club_only_events_are_gated(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    city, interest = town(), tag()
    owner = await make_account(city=city)
    free = await make_account(city=city, interests=[interest])
    plus = await make_account(city=city, interests=[interest])
    async with db.begin() as session:
        await session.execute(update(User).where(User.id == _uid(plus.id)).values(premium_tier="plus"))
    made = await client.post(
        "/v1/clubs", json={"name": f"Gold {interest}", "city": city, "privacy_level": "public"}, headers=owner.headers
    )
    assert made.status_code == 201, made.text
    club_id = made.json()["id"]
    async with db.begin() as session:
        await session.execute(
            update(Club).where(Club.id == ids.decode(ids.Prefix.CLUB, club_id)).values(required_tier="plus")
        )
    await grant_role(db, owner)
    loc = {"name": "Lounge", "latitude": 30.27, "longitude": -97.74, "city": city}
    gated = await create_event(client, owner, location=loc, tags=[interest], club_id=club_id)
    members_only = await create_event(client, owner, location=loc, tags=[interest], club_id=club_id, visibility="club")
    assert gated not in [i["id"] for i in await event_recs(client, free)]
    plus_items = [i["id"] for i in await event_recs(client, plus)]
    assert gated in plus_items
    assert members_only not in plus_items
    assert [i["id"] for i in await event_recs(client, plus, premium_only="true")] == [gated]


async def test_concurrent_first_reads_and_dismissals_are_safe(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    city, interest = town(), tag()
    me = await make_account(city=city, interests=[interest])
    organizer = await make_organizer(make_account, db)
    loc = {"name": "Dock", "latitude": 30.27, "longitude": -97.74, "city": city}
    event = await create_event(client, organizer, location=loc, tags=[interest])
    pages = await asyncio.gather(*(event_recs(client, me) for _ in range(4)))
    assert all([i["id"] for i in page] == [event] for page in pages)
    body = {"kind": "event", "id": event}
    answers = await asyncio.gather(
        *(client.post("/v1/recommendations/dismiss", json=body, headers=me.headers) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [200] * 4
    assert await count(db, RecommendationDismissal, RecommendationDismissal.user_id == _uid(me.id)) == 1
    assert await event_recs(client, me) == []
