"""A waitlist head that does not fit blocks the queue (strict FIFO); when it leaves, the queue moves."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.api.conftest import MakeAccount
from tests.api.events.helpers import create_event, detail, make_organizer, rsvp


async def test_the_next_in_line_is_promoted_when_the_blocking_head_steps_back(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    a, big, c, d = [await make_account() for _ in range(4)]
    for answer in ("maybe", "not_going"):
        event_id = await create_event(client, organizer, capacity=2)
        assert (await rsvp(client, event_id, a))["status"] == "confirmed"
        # One seat left: big (4 seats) waits at the head; c would fit but must not overtake.
        assert (await rsvp(client, event_id, big, guests=3))["waitlist_position"] == 1
        assert (await rsvp(client, event_id, c))["waitlist_position"] == 2
        assert (await rsvp(client, event_id, d))["waitlist_position"] == 3
        assert (await rsvp(client, event_id, big, status=answer))["status"] in ("maybe", "cancelled")
        assert (await detail(client, event_id, c))["my_rsvp"]["status"] == "confirmed"
        mine = (await detail(client, event_id, d))["my_rsvp"]
        assert (mine["status"], mine["waitlist_position"]) == ("waitlisted", 1)


async def test_the_next_in_line_is_promoted_when_the_blocking_head_is_rejected(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, capacity=2)
    a, big, c = [await make_account() for _ in range(3)]
    assert (await rsvp(client, event_id, a))["status"] == "confirmed"
    blocked = await rsvp(client, event_id, big, guests=2)
    assert blocked["status"] == "waitlisted"
    assert (await rsvp(client, event_id, c))["status"] == "waitlisted"
    rejected = await client.post(
        f"/v1/events/{event_id}/attendees/{blocked['rsvp_id']}/reject", headers=organizer.headers
    )
    assert rejected.status_code == 200, rejected.text
    assert (await detail(client, event_id, c))["my_rsvp"]["status"] == "confirmed"
    assert (await detail(client, event_id, organizer))["waitlist_count"] == 0
