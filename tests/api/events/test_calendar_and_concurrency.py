"""Calendars (ICS parsed back with icalendar, subscription feeds) and 200 simultaneous RSVPs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import icalendar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.events.models import Event, Rsvp, RsvpChange
from tests.api.conftest import MakeAccount
from tests.api.events.helpers import bulk_accounts, create_event, detail, make_organizer, rsvp, soon


def only_vevent(text: str) -> icalendar.Event:
    calendar = icalendar.Calendar.from_ical(text)
    events = list(calendar.walk("VEVENT"))
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, icalendar.Event)
    return event


async def test_event_ics_round_trips_and_tracks_updates(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    start = soon(days=5)
    event_id = await create_event(
        client,
        organizer,
        title="Roof Concert",
        start_time=start.isoformat(),
        end_time=(start + timedelta(hours=2)).isoformat(),
        location={"name": "Roof", "latitude": 40.0, "longitude": -73.0, "address": "1 High St"},
        address_visibility="attendees",
    )
    viewer = await make_account()
    response = await client.get(f"/v1/events/{event_id}/calendar.ics", headers=viewer.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    vevent = only_vevent(response.text)
    assert str(vevent["UID"]) == f"{event_id}@tribe"
    assert vevent.decoded("DTSTART") == start
    assert vevent.decoded("DTSTART").tzinfo is not None
    assert vevent.decoded("DTSTART").utcoffset().total_seconds() == 0
    assert "DTSTART:" in response.text
    assert response.text.split("DTSTART:")[1][15] == "Z"
    assert str(vevent["SUMMARY"]) == "Roof Concert"
    assert str(vevent["LOCATION"]) == "Roof"  # the private address stays hidden
    assert str(vevent["URL"]) == (await detail(client, event_id, viewer))["share_url"]
    assert str(vevent["STATUS"]) == "CONFIRMED"
    first_sequence = int(str(vevent["SEQUENCE"]))

    new_start = soon(days=6)
    moved = await client.patch(
        f"/v1/events/{event_id}",
        json={"start_time": new_start.isoformat(), "end_time": (new_start + timedelta(hours=2)).isoformat()},
        headers=organizer.headers,
    )
    assert moved.status_code == 200
    after_move = only_vevent((await client.get(f"/v1/events/{event_id}/calendar.ics", headers=viewer.headers)).text)
    assert int(str(after_move["SEQUENCE"])) == first_sequence + 1
    assert after_move.decoded("DTSTART") == new_start
    assert after_move.decoded("DTEND") == new_start + timedelta(hours=2)

    # The subscription feed: confirmed events only; rotation revokes the old token.
    not_connected = await rsvp(client, event_id, viewer)
    assert not_connected["calendar_sync"] == {"google": "not_connected", "apple": "not_connected"}
    token = await client.post("/v1/calendar/feed-token", headers=viewer.headers)
    assert token.status_code == 201
    feed_url = token.json()["url"]
    assert token.json()["webcal_url"].startswith("webcal://")
    path = feed_url.split("://", 1)[1].split("/", 1)[1]
    feed = await client.get(f"/{path}")
    assert feed.status_code == 200
    vevent_in_feed = only_vevent(feed.text)
    assert str(vevent_in_feed["UID"]) == f"{event_id}@tribe"
    assert "1 High St" in str(vevent_in_feed["LOCATION"])
    synced = await rsvp(client, event_id, viewer)
    assert synced["calendar_sync"] == {"google": "synced", "apple": "synced"}

    cancelled = await client.post(f"/v1/events/{event_id}/cancel", headers=organizer.headers)
    assert cancelled.status_code == 200
    in_feed = only_vevent((await client.get(f"/{path}")).text)
    assert str(in_feed["STATUS"]) == "CANCELLED"
    assert int(str(in_feed["SEQUENCE"])) == first_sequence + 2

    rotated = await client.post("/v1/calendar/feed-token", headers=viewer.headers)
    assert rotated.json()["token"] != token.json()["token"]
    assert (await client.get(f"/{path}")).status_code == 404
    new_path = rotated.json()["url"].split("://", 1)[1].split("/", 1)[1]
    assert (await client.get(f"/{new_path}")).status_code == 200
    assert (await client.delete("/v1/calendar/feed-token", headers=viewer.headers)).status_code == 204
    assert (await client.get(f"/{new_path}")).status_code == 404
    assert (await client.get("/v1/calendar/garbage.ics")).status_code == 404


async def test_two_hundred_simultaneous_rsvps_never_oversell(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
) -> None:
    organizer = await make_organizer(make_account, db)
    capacity = 17
    event_id = await create_event(client, organizer, capacity=capacity)
    crowd = await bulk_accounts(db, engine_env, 200)

    async def go(i: int) -> dict[str, object]:
        response = await client.post(
            f"/v1/events/{event_id}/rsvp",
            json={"status": "going", "guest_count": i % 3},
            headers=crowd[i].headers,
        )
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    answers = await asyncio.gather(*(go(i) for i in range(len(crowd))))
    key = ids.decode(ids.Prefix.EVENT, event_id)
    async with db() as session:
        event = await session.get(Event, key)
        assert event is not None
        rows = list(await session.scalars(select(Rsvp).where(Rsvp.event_id == key)))
        history = {h.rsvp_id: h.id for h in await session.scalars(select(RsvpChange).where(RsvpChange.event_id == key))}
    confirmed = [r for r in rows if r.status == "confirmed"]
    waitlisted = sorted((r for r in rows if r.status == "waitlisted"), key=lambda r: r.queue_seq or 0)
    seats = sum(r.seats for r in confirmed)
    assert seats == event.seats_taken
    # Strict FIFO with guests: the head of the queue did not fit, so the event is full up to its size.
    assert seats <= capacity
    assert waitlisted
    assert capacity - seats < waitlisted[0].seats
    assert len(confirmed) + len(waitlisted) == 200
    # Arrival order = the order RSVP transactions took the event lock (and so committed): queue_seq,
    # the clock_timestamp() taken under the lock, and the history row ids all agree.
    assert [r.queue_seq for r in waitlisted] == list(range(1, len(waitlisted) + 1))
    queued = [r.queued_at for r in waitlisted]
    assert all(isinstance(t, datetime) for t in queued)
    assert queued == sorted(queued)  # type: ignore[type-var]
    assert [history[r.id] for r in waitlisted] == sorted(history[r.id] for r in waitlisted)
    # Every confirmed RSVP arrived before every waitlisted one.
    assert max(history[r.id] for r in confirmed) < min(history[r.id] for r in waitlisted)
    positions = sorted(int(a["waitlist_position"]) for a in answers if a["status"] == "waitlisted")  # type: ignore[call-overload]
    assert positions == list(range(1, len(waitlisted) + 1))

    # Everyone confirmed leaves at once: promotions follow the queue exactly.
    confirmed_users = {r.user_id for r in confirmed}
    leavers = [a for a in crowd if ids.decode(ids.Prefix.USER, a.id) in confirmed_users]
    await asyncio.gather(*(rsvp(client, event_id, a, status="not_going") for a in leavers))
    async with db() as session:
        event = await session.get(Event, key)
        assert event is not None
        now_confirmed = list(
            await session.scalars(select(Rsvp).where(Rsvp.event_id == key, Rsvp.status == "confirmed"))
        )
    assert sum(r.seats for r in now_confirmed) == event.seats_taken <= capacity
    promoted_ids = {r.id for r in now_confirmed}
    prefix = [r.id for r in waitlisted[: len(promoted_ids)]]
    assert set(prefix) == promoted_ids
    assert datetime.now(UTC) > event.created_at
