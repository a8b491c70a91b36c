"""Reminders through a real burst worker and a frozen clock: each once, and following a moved event."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from tests.api.club_support import outbox_events, uuid_of
from tests.api.conftest import MakeAccount
from tests.api.events.helpers import create_event, make_organizer, rsvp, soon
from tests.api.worker_support import run_startup_crons


async def reminders(db: async_sessionmaker[AsyncSession], event_id: str) -> list[tuple[str, str, str]]:
    rows = await outbox_events(db, "event.reminder_due", event_id=uuid_of(ids.Prefix.EVENT, event_id))
    return sorted((r["user_id"], r["kind"], r["start_time"]) for r in rows)


async def test_reminders_go_out_once_and_follow_a_rescheduled_event(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
) -> None:
    organizer = await make_organizer(make_account, db)
    start = soon(days=3)
    event_id = await create_event(
        client, organizer, start_time=start.isoformat(), end_time=(start + timedelta(hours=2)).isoformat()
    )
    guest, waiting, maybe = await make_account(), await make_account(), await make_account()
    await rsvp(client, event_id, guest)
    await rsvp(client, event_id, maybe, status="maybe")
    assert (await client.patch(f"/v1/events/{event_id}", json={"capacity": 1}, headers=organizer.headers)).is_success
    assert (await rsvp(client, event_id, waiting))["status"] == "waitlisted"
    user = uuid_of(ids.Prefix.USER, guest.id)

    await run_startup_crons(engine_env, start - timedelta(hours=30))
    assert await reminders(db, event_id) == []

    await run_startup_crons(engine_env, start - timedelta(hours=23))
    await run_startup_crons(engine_env, start - timedelta(hours=22, minutes=59))
    day = [(user, "24h", start.isoformat().replace("+00:00", "Z"))]
    assert await reminders(db, event_id) == day

    await run_startup_crons(engine_env, start - timedelta(minutes=50))
    await run_startup_crons(engine_env, start - timedelta(minutes=49))
    hour = [(user, "1h", start.isoformat().replace("+00:00", "Z"))]
    assert await reminders(db, event_id) == sorted(day + hour)

    # The event moves a day later: a new 24 h and 1 h reminder follow the new time, once each.
    new_start = start + timedelta(days=1)
    moved = await client.patch(
        f"/v1/events/{event_id}",
        json={"start_time": new_start.isoformat(), "end_time": (new_start + timedelta(hours=2)).isoformat()},
        headers=organizer.headers,
    )
    assert moved.status_code == 200
    for at in (new_start - timedelta(hours=23), new_start - timedelta(hours=20), new_start - timedelta(minutes=30)):
        await run_startup_crons(engine_env, at)
        await run_startup_crons(engine_env, at + timedelta(seconds=1))
    stamp = new_start.isoformat().replace("+00:00", "Z")
    assert await reminders(db, event_id) == sorted(day + hour + [(user, "24h", stamp), (user, "1h", stamp)])


async def test_cancellation_notifies_every_attendee(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, capacity=1)
    going, waiting, maybe, gone = [await make_account() for _ in range(4)]
    await rsvp(client, event_id, going)
    await rsvp(client, event_id, waiting)
    await rsvp(client, event_id, maybe, status="maybe")
    await rsvp(client, event_id, gone, status="not_going")
    assert (await client.post(f"/v1/events/{event_id}/cancel", headers=organizer.headers)).status_code == 200
    [event] = await outbox_events(db, "event.cancelled", event_id=uuid_of(ids.Prefix.EVENT, event_id))
    assert event["attendee_ids"] == [uuid_of(ids.Prefix.USER, a.id) for a in (going, waiting, maybe)]
