"""Features notify people: RSVPs, promotions, reminders, cancellations, friend requests, club approvals, chat.

Everything goes through the real API and a real ``tribe worker`` process (outbox relay and jobs); the
notifications are read back over ``GET /v1/notifications``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.chat.models import ChatParticipant
from shared.domain.gamification.models import ActivityCounter
from tests.api.club_support import create_club
from tests.api.conftest import Account, MakeAccount
from tests.api.events.helpers import create_event, make_organizer, rsvp, soon
from tests.api.worker_support import run_startup_crons

Sessions = async_sessionmaker[AsyncSession]


async def notifications(client: httpx.AsyncClient, user: Account, type_: str) -> list[dict[str, Any]]:
    """The user's notifications of one type, newest first."""
    response = await client.get("/v1/notifications", params={"limit": 100}, headers=user.headers)
    assert response.status_code == 200, response.text
    return [n for n in response.json()["items"] if n["type"] == type_]


async def wait_for(client: httpx.AsyncClient, user: Account, type_: str, count: int = 1) -> list[dict[str, Any]]:
    """Poll (up to 15 s) until the user has ``count`` notifications of ``type_``; a count above it fails."""
    async with asyncio.timeout(15):
        while True:
            found = await notifications(client, user, type_)
            assert len(found) <= count, found
            if len(found) == count:
                return found
            await asyncio.sleep(0.05)


async def test_rsvp_promotion_and_cancellation_notify_once_each(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions, worker: None
) -> None:
    organizer = await make_organizer(make_account, db)
    title = f"Jazz night {uuid.uuid4().hex[:6]}"
    event_id = await create_event(client, organizer, capacity=1, title=title)
    first, second, bystander = await make_account(), await make_account(), await make_account()
    assert (await rsvp(client, event_id, first))["status"] == "confirmed"
    assert (await rsvp(client, event_id, second))["status"] == "waitlisted"

    [confirmed] = await wait_for(client, first, "rsvp_confirmed")
    assert confirmed["title"] == f"You're going to {title}"
    assert confirmed["payload"]["event_id"] == event_id

    assert (await rsvp(client, event_id, first, status="not_going"))["status"] == "cancelled"
    [promoted] = await wait_for(client, second, "waitlist_promoted")
    assert promoted["title"] == f"A spot opened up at {title}"

    assert (await client.post(f"/v1/events/{event_id}/cancel", headers=organizer.headers)).status_code == 200
    [cancelled] = await wait_for(client, second, "event_cancelled")
    assert cancelled["title"] == f"{title} was cancelled"
    # A promotion is told once (not also as a confirmation); who left before the cancellation is not told.
    assert await notifications(client, second, "rsvp_confirmed") == []
    assert await notifications(client, first, "event_cancelled") == []
    assert await notifications(client, first, "rsvp_confirmed") == [confirmed]
    assert await notifications(client, bystander, "event_cancelled") == []


async def test_an_approved_rsvp_is_told_as_an_approval(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions, worker: None
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, requires_approval=True)
    guest = await make_account()
    pending = await rsvp(client, event_id, guest)
    assert pending["status"] == "pending_approval"
    approved = await client.post(
        f"/v1/events/{event_id}/attendees/{pending['rsvp_id']}/approve", headers=organizer.headers
    )
    assert approved.status_code == 200, approved.text
    [told] = await wait_for(client, guest, "rsvp_approved")
    assert told["payload"]["event_id"] == event_id
    assert await notifications(client, guest, "rsvp_confirmed") == []


async def test_reminders_notify_the_attendee(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions, engine_env: dict[str, str], worker: None
) -> None:
    organizer = await make_organizer(make_account, db)
    start = soon(days=3)
    event_id = await create_event(
        client, organizer, start_time=start.isoformat(), end_time=(start + timedelta(hours=2)).isoformat()
    )
    guest = await make_account()
    await rsvp(client, event_id, guest)
    await run_startup_crons(engine_env, start - timedelta(hours=23))
    [reminder] = await wait_for(client, guest, "event_reminder")
    assert reminder["payload"]["event_id"] == event_id
    assert reminder["payload"]["reminder"] == "24h"
    await run_startup_crons(engine_env, start - timedelta(minutes=50))
    await wait_for(client, guest, "event_reminder", count=2)
    assert await notifications(client, organizer, "event_reminder") == []


async def test_friend_requests_and_club_approvals_notify(
    client: httpx.AsyncClient, make_account: MakeAccount, worker: None
) -> None:
    alice, bob = await make_account(display_name="Alice Asker"), await make_account()
    asked = await client.post("/v1/friends/requests", json={"user_id": bob.id}, headers=alice.headers)
    assert asked.status_code == 201, asked.text
    [request] = await wait_for(client, bob, "friend_request")
    assert request["title"] == "Alice Asker wants to connect"
    assert request["payload"]["sender_id"] == alice.id
    assert await notifications(client, alice, "friend_request") == []

    owner, joiner = await make_account(), await make_account()
    club = await create_club(client, owner, privacy_level="private")
    joined = await client.post(f"/v1/clubs/{club['id']}/join", json={"message": "hi"}, headers=joiner.headers)
    assert joined.json()["status"] == "pending"
    approve = f"/v1/clubs/{club['id']}/requests/{joiner.id}/approve"
    assert (await client.post(approve, headers=owner.headers)).status_code == 200
    # Approving again changes nothing and tells nobody again.
    assert (await client.post(approve, headers=owner.headers)).status_code == 200
    [welcome] = await wait_for(client, joiner, "club_join_approved")
    assert welcome["title"] == f"Welcome to {club['name']}"
    assert welcome["payload"]["club_id"] == club["id"]
    await asyncio.sleep(0.3)
    assert len(await notifications(client, joiner, "club_join_approved")) == 1


async def messages_counted(db: Sessions, account: Account) -> int:
    """The sender's ``messages`` badge counter."""
    async with db() as session:
        value = await session.scalar(
            select(ActivityCounter.value).where(
                ActivityCounter.user_id == ids.decode(ids.Prefix.USER, account.id),
                ActivityCounter.counter == "messages",
            )
        )
    return value or 0


async def test_rest_chat_messages_count_for_badges_and_notify_offline_members_collapsed(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions, worker: None
) -> None:
    alice, bob, carol = await make_account(display_name="Alice Sender"), await make_account(), await make_account()
    created = await client.post(
        "/v1/chats",
        json={"type": "group", "title": "Hikers", "participant_ids": [bob.id, carol.id]},
        headers=alice.headers,
    )
    assert created.status_code == 201, created.text
    chat_id = created.json()["id"]
    # Carol muted the chat: she is not told.
    async with db.begin() as session:
        await session.execute(
            update(ChatParticipant)
            .where(
                ChatParticipant.chat_id == ids.decode(ids.Prefix.CHAT, chat_id),
                ChatParticipant.user_id == ids.decode(ids.Prefix.USER, carol.id),
            )
            .values(muted_until=soon(days=1))
        )

    async def send(body: str) -> None:
        payload = {"client_message_id": uuid.uuid4().hex, "content": {"type": "text", "text": body}}
        sent = await client.post(f"/v1/chats/{chat_id}/messages", json=payload, headers=alice.headers)
        assert sent.status_code == 202, sent.text

    await send("first")
    [told] = await wait_for(client, bob, "chat_message")
    assert told["title"] == "Alice Sender"
    assert (told["body"], told["count"], told["payload"]["chat_id"]) == ("first", 1, chat_id)
    async with asyncio.timeout(15):
        while await messages_counted(db, alice) < 1:
            await asyncio.sleep(0.05)

    await send("second")
    async with asyncio.timeout(15):
        while (current := (await wait_for(client, bob, "chat_message"))[0])["count"] < 2:
            await asyncio.sleep(0.05)
    assert current["id"] == told["id"]
    assert current["body"] == "second"
    async with asyncio.timeout(15):
        while await messages_counted(db, alice) < 2:
            await asyncio.sleep(0.05)
    assert await notifications(client, carol, "chat_message") == []
    assert await notifications(client, alice, "chat_message") == []
