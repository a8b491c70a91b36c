"""Event and club rooms through the real API: membership follows RSVPs and club membership."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.bus import OutboxRow
from shared.domain.chat.models import Chat, ChatParticipant
from tests.api.club_support import add_member, ban, create_club, join, outbox_events
from tests.api.conftest import Account, MakeAccount
from tests.api.events.helpers import create_event, make_organizer, rsvp
from tests.api.test_chat import count_messages, group_chat, send, text


async def room(
    client: httpx.AsyncClient, who: Account, *, club_id: str | None = None, event_id: str | None = None
) -> Any:
    """The caller's room of that club or event, or ``None`` when they are not in it."""
    listed = await client.get("/v1/chats", params={"limit": 100}, headers=who.headers)
    assert listed.status_code == 200, listed.text
    for chat in listed.json()["items"]:
        if (club_id and chat["club_id"] == club_id) or (event_id and chat["event_id"] == event_id):
            return chat
    return None


async def members(db: async_sessionmaker[AsyncSession], chat_id: str) -> set[str]:
    async with db() as session:
        rows = await session.scalars(
            select(ChatParticipant.user_id).where(ChatParticipant.chat_id == ids.decode(ids.Prefix.CHAT, chat_id))
        )
        return {ids.encode(ids.Prefix.USER, r) for r in rows}


# Club rooms


async def test_club_room_follows_membership(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, joiner, banned = await make_account(), await make_account(), await make_account()
    club = await create_club(client, owner)
    chat = await room(client, owner, club_id=club["id"])
    assert chat is not None
    assert chat["type"] == "club"
    assert chat["role"] == "admin"
    assert chat["read_only"] is False
    assert chat["title"] == club["name"]

    assert await join(client, club["id"], joiner) == "approved"
    await join(client, club["id"], banned)
    assert await members(db, chat["id"]) == {owner.id, joiner.id, banned.id}
    joined = await room(client, joiner, club_id=club["id"])
    assert joined is not None
    assert joined["role"] == "member"

    # The room's membership changes are announced on the users' live subjects.
    async with db() as session:
        announced = await session.scalar(
            select(func.count()).where(
                OutboxRow.event_type == "chat.room_membership",
                OutboxRow.payload["chat_id"].astext == chat["id"],
                OutboxRow.payload["user_id"].astext == joiner.id,
            )
        )
    assert announced == 1

    left = await client.delete(f"/v1/clubs/{club['id']}/membership", headers=joiner.headers)
    assert left.status_code in (200, 204), left.text
    await ban(client, club, owner, banned)
    assert await members(db, chat["id"]) == {owner.id}
    assert await room(client, joiner, club_id=club["id"]) is None
    gone = await client.get(f"/v1/chats/{chat['id']}", headers=banned.headers)
    assert gone.status_code == 404


async def test_deleting_a_club_empties_its_room_and_makes_it_read_only(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, member = await make_account(), await make_account()
    club = await create_club(client, owner)
    await join(client, club["id"], member)
    chat = await room(client, owner, club_id=club["id"])
    deleted = await client.delete(f"/v1/clubs/{club['id']}", headers=owner.headers)
    assert deleted.status_code in (200, 204), deleted.text
    assert await members(db, chat["id"]) == set()


async def test_concurrent_joins_each_land_in_the_room_once(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner = await make_account()
    joiners = [await make_account() for _ in range(6)]
    club = await create_club(client, owner)
    chat = await room(client, owner, club_id=club["id"])
    # Each user joins twice at once: one membership, one room seat.
    results = await asyncio.gather(*(join(client, club["id"], j) for j in joiners for _ in range(2)))
    assert set(results) == {"approved"}
    assert await members(db, chat["id"]) == {owner.id, *(j.id for j in joiners)}


async def test_members_of_managed_rooms_cannot_be_changed_by_hand(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, member, outsider = await make_account(), await make_account(), await make_account()
    club = await create_club(client, owner)
    await join(client, club["id"], member)
    chat = await room(client, owner, club_id=club["id"])
    added = await client.post(
        f"/v1/chats/{chat['id']}/participants", json={"user_ids": [outsider.id]}, headers=owner.headers
    )
    assert added.status_code == 409
    assert added.headers["content-type"].startswith("application/problem+json")
    assert added.json()["code"] == "chat_membership_managed"
    removed = await client.delete(f"/v1/chats/{chat['id']}/participants/{member.id}", headers=owner.headers)
    assert removed.status_code == 409
    assert removed.json()["code"] == "chat_membership_managed"
    left = await client.delete(f"/v1/chats/{chat['id']}/participants/{member.id}", headers=member.headers)
    assert left.status_code == 409
    assert left.json()["code"] == "chat_membership_managed"
    assert await members(db, chat["id"]) == {owner.id, member.id}
    # Someone else's room is not there at all.
    foreign = await client.post(
        f"/v1/chats/{chat['id']}/participants", json={"user_ids": [outsider.id]}, headers=outsider.headers
    )
    assert foreign.status_code == 404


# Event rooms


async def test_event_room_follows_confirmed_rsvps(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    guest, maybe = await make_account(), await make_account()
    draft = await create_event(client, organizer, publish=False)
    assert await room(client, organizer, event_id=draft) is None
    event_id = await create_event(client, organizer)
    chat = await room(client, organizer, event_id=event_id)
    assert chat is not None
    assert chat["type"] == "event"
    assert chat["role"] == "admin"

    assert (await rsvp(client, event_id, guest))["status"] == "confirmed"
    await rsvp(client, event_id, maybe, status="maybe")
    assert await members(db, chat["id"]) == {organizer.id, guest.id}

    said = await send(client, organizer, chat["id"], "Meet at the trailhead")
    assert said.status_code == 202
    history = await client.get(f"/v1/chats/{chat['id']}/messages", headers=guest.headers)
    assert [m["content"]["text"] for m in history.json()["messages"]] == ["Meet at the trailhead"]

    await rsvp(client, event_id, guest, status="not_going")
    assert await members(db, chat["id"]) == {organizer.id}
    # The organizer's own RSVP changes never push them out of the room they run.
    await rsvp(client, event_id, organizer)
    await rsvp(client, event_id, organizer, status="not_going")
    assert await members(db, chat["id"]) == {organizer.id}


async def test_a_cancelled_event_room_is_read_only_for_attendees(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    guest = await make_account()
    event_id = await create_event(client, organizer)
    await rsvp(client, event_id, guest)
    chat = await room(client, guest, event_id=event_id)
    cancelled = await client.post(f"/v1/events/{event_id}/cancel", headers=organizer.headers)
    assert cancelled.status_code == 200, cancelled.text
    view = await client.get(f"/v1/chats/{chat['id']}", headers=guest.headers)
    assert view.json()["read_only"] is True
    # The room's sockets are told through a chat.update row (published by the relay).
    [announced] = await outbox_events(db, "chat.update", chat_id=chat["id"])
    assert (announced["read_only"], announced["updated_by"]) == (True, organizer.id)
    before = await count_messages(db, chat["id"])
    refused = await send(client, guest, chat["id"], "so sad")
    assert refused.status_code == 403
    assert refused.json()["code"] == "chat_read_only"
    assert await count_messages(db, chat["id"]) == before
    allowed = await send(client, organizer, chat["id"], "Rescheduling soon")
    assert allowed.status_code == 202


async def test_club_moderators_post_in_a_read_only_club_room(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, moderator, member = await make_account(), await make_account(), await make_account()
    club = await create_club(client, owner)
    await add_member(client, club, owner, moderator, role="moderator")
    await add_member(client, club, owner, member)
    chat = await room(client, owner, club_id=club["id"])
    async with db.begin() as session:
        await session.execute(
            update(Chat).where(Chat.id == ids.decode(ids.Prefix.CHAT, chat["id"])).values(read_only=True)
        )
    assert (await send(client, moderator, chat["id"], "Announcement")).status_code == 202
    refused = await send(client, member, chat["id"], "me too")
    assert refused.status_code == 403
    assert refused.json()["code"] == "chat_read_only"


# Mentions and replies


async def test_mentions_must_be_members_and_replies_stay_in_the_chat(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    a, b, outsider = await make_account(), await make_account(), await make_account()
    chat_id = await group_chat(client, a, b)
    other_chat = await group_chat(client, a, outsider, title="Elsewhere")
    elsewhere = await send(client, a, other_chat, "over here")
    before = await count_messages(db, chat_id)

    unknown = await client.post(
        f"/v1/chats/{chat_id}/messages",
        json={"client_message_id": uuid.uuid4().hex, "content": text("hi @x"), "mentions": [outsider.id]},
        headers=a.headers,
    )
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "mention_not_member"
    assert unknown.json()["errors"][0]["field"] == "mentions"
    malformed = await client.post(
        f"/v1/chats/{chat_id}/messages",
        json={"client_message_id": uuid.uuid4().hex, "content": text("hi"), "mentions": ["usr_nope"]},
        headers=a.headers,
    )
    assert malformed.status_code == 422
    cross = await client.post(
        f"/v1/chats/{chat_id}/messages",
        json={"client_message_id": uuid.uuid4().hex, "content": text("re"), "reply_to": elsewhere.json()["message_id"]},
        headers=a.headers,
    )
    assert cross.status_code == 422
    assert cross.json()["errors"][0]["field"] == "reply_to"
    assert await count_messages(db, chat_id) == before

    # A non-member learns nothing about who is in the chat.
    snoop = await client.post(
        f"/v1/chats/{chat_id}/messages",
        json={"client_message_id": uuid.uuid4().hex, "content": text("hi"), "mentions": [a.id]},
        headers=outsider.headers,
    )
    assert snoop.status_code == 404

    first = await send(client, b, chat_id, "first")
    ok = await client.post(
        f"/v1/chats/{chat_id}/messages",
        json={
            "client_message_id": uuid.uuid4().hex,
            "content": text("hi @b"),
            "mentions": [b.id],
            "reply_to": first.json()["message_id"],
        },
        headers=a.headers,
    )
    assert ok.status_code == 202, ok.text
    history = await client.get(f"/v1/chats/{chat_id}/messages", headers=b.headers)
    newest = history.json()["messages"][0]
    assert newest["mentions"] == [b.id]
    assert newest["reply_to"] == first.json()["message_id"]
