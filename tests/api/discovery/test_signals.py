"""Each activity signal (messages, post engagement, posts about a tag, check-ins) moves a ranking."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.events.models import Event
from tests.api.conftest import Account, MakeAccount
from tests.api.discovery.support import event_recs, people_recs, tag, town
from tests.api.events.helpers import create_event, detail, make_organizer, rsvp

Sessions = async_sessionmaker[AsyncSession]


async def _chat(client: httpx.AsyncClient, a: Account, b: Account) -> str:
    response = await client.post("/v1/chats", json={"type": "direct", "participant_ids": [b.id]}, headers=a.headers)
    assert response.status_code in (200, 201), response.text
    chat_id: str = response.json()["id"]
    return chat_id


async def _say(client: httpx.AsyncClient, who: Account, chat_id: str, text: str) -> None:
    payload = {"client_message_id": uuid.uuid4().hex, "content": {"type": "text", "text": text}}
    response = await client.post(f"/v1/chats/{chat_id}/messages", json=payload, headers=who.headers)
    assert response.status_code in (200, 201, 202), response.text


async def _post(client: httpx.AsyncClient, author: Account, tags: list[str] | None = None) -> str:
    response = await client.post(
        "/v1/users/me/posts",
        json={"content": "out and about", "visibility": "public", "tags": tags or []},
        headers=author.headers,
    )
    assert response.status_code == 201, response.text
    post_id: str = response.json()["id"]
    return post_id


async def _into_past(db: Sessions, *event_ids: str) -> None:
    async with db.begin() as session:
        await session.execute(
            update(Event)
            .where(Event.id.in_([ids.decode(ids.Prefix.EVENT, e) for e in event_ids]))
            .values(start_time=Event.start_time - timedelta(days=20), end_time=Event.end_time - timedelta(days=20))
        )


def _rank(items: list[dict[str, Any]], item_id: str) -> int:
    got = [i["id"] for i in items]
    assert item_id in got, (item_id, items)
    return got.index(item_id)


async def test_messages_exchanged_lift_a_person_and_one_way_messages_do_not(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    city = town()
    me = await make_account(city=city)
    talked, quiet = await make_account(city=city), await make_account(city=city)
    stranger = await make_account(city=town())  # shares nothing but a chat where only they wrote
    chat = await _chat(client, me, talked)
    for who, text in ((me, "hi"), (talked, "hey!"), (talked, "coffee?"), (me, "sure")):
        await _say(client, who, chat, text)
    await _say(client, stranger, await _chat(client, stranger, me), "buy my stuff")

    items = await people_recs(client, me)

    assert _rank(items, talked.id) < _rank(items, quiet.id)
    assert stranger.id not in [i["id"] for i in items]


async def test_liking_and_commenting_on_posts_lifts_that_person(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    city = town()
    me = await make_account(city=city)
    author, other = await make_account(city=city), await make_account(city=city)
    post_id = await _post(client, author)
    await _post(client, other)
    liked = await client.post(f"/v1/posts/{post_id}/reactions", json={"kind": "like"}, headers=me.headers)
    assert liked.status_code == 200, liked.text
    commented = await client.post(f"/v1/posts/{post_id}/comments", json={"content": "great"}, headers=me.headers)
    assert commented.status_code == 201, commented.text

    items = await people_recs(client, me)

    assert _rank(items, author.id) < _rank(items, other.id)


async def test_posting_about_a_tag_lifts_events_with_that_tag(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    city, topic = town(), tag()
    me = await make_account(city=city)
    organizer = await make_organizer(make_account, db)
    loc = {"name": "Hall", "latitude": 30.27, "longitude": -97.74, "city": city}
    plain = await create_event(client, organizer, location=loc, tags=["misc"])
    on_topic = await create_event(client, organizer, location=loc, tags=[topic])
    await _post(client, me, tags=[topic])

    items = await event_recs(client, me)

    assert _rank(items, on_topic) < _rank(items, plain)


async def test_check_ins_weigh_more_than_rsvps_for_events_and_people(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    city, went, rsvped = town(), tag(), tag()
    me = await make_account(city=city)
    together, only_rsvped = await make_account(city=city), await make_account(city=city)
    organizer = await make_organizer(make_account, db)
    loc = {"name": "Club", "latitude": 30.27, "longitude": -97.74, "city": city}
    attended = await create_event(client, organizer, location=loc, tags=[went])
    skipped = await create_event(client, organizer, location=loc, tags=[rsvped])
    for who in (me, together, only_rsvped):
        await rsvp(client, attended, who)
    await rsvp(client, skipped, me)
    for who in (me, together):
        code = (await detail(client, attended, who))["my_rsvp"]["ticket_code"]
        done = await client.post(
            f"/v1/events/{attended}/checkin", json={"ticket_code": code}, headers=organizer.headers
        )
        assert done.status_code == 200, done.text
    await _into_past(db, attended, skipped)
    same_as_rsvped = await create_event(client, organizer, location=loc, tags=[rsvped])
    same_as_attended = await create_event(client, organizer, location=loc, tags=[went])

    events = await event_recs(client, me)
    people = await people_recs(client, me)

    # The tag of the event I checked in at beats the tag of one I only RSVPed to.
    assert _rank(events, same_as_attended) < _rank(events, same_as_rsvped)
    # Checked in together beats RSVPed to the same event.
    assert _rank(people, together.id) < _rank(people, only_rsvped.id)


async def test_people_i_talk_to_attending_lift_an_event(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    city = town()
    me = await make_account(city=city)
    pal = await make_account(city=town())
    organizer = await make_organizer(make_account, db)
    elsewhere = {"name": "Barn", "latitude": 10.0, "longitude": 10.0, "city": town()}
    chat = await _chat(client, me, pal)
    await _say(client, me, chat, "going out?")
    await _say(client, pal, chat, "yes, to the barn")
    with_pal = await create_event(client, organizer, location=elsewhere, tags=["misc"])
    await rsvp(client, with_pal, pal)

    items = await event_recs(client, me)

    # Not in my city, clubs or interests: only the chat brings it in, and it says so.
    assert _rank(items, with_pal) == 0
    assert items[0]["reason"] == "People you talk to are going"
