"""``PATCH /v1/chats/{id}`` through the real API: group titles, read-only rooms, audit rows and events."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.bus import ChatLiveEvent, ChatUpdated, OutboxRow, decode_live_event
from shared.domain.moderation.models import ModerationAuditEntry
from tests.api.club_support import add_member, create_club
from tests.api.conftest import Account, MakeAccount
from tests.api.events.helpers import create_event, make_organizer, rsvp
from tests.api.test_chat import count_messages, direct_chat, group_chat, live, send
from tests.api.test_chat_rooms import room

__all__ = ["live"]


async def patch(client: httpx.AsyncClient, who: Account, chat_id: str, body: object) -> httpx.Response:
    return await client.patch(f"/v1/chats/{chat_id}", json=body, headers=who.headers)


async def audit(db: async_sessionmaker[AsyncSession], chat_id: str) -> list[tuple[str, str, str | None]]:
    """(action, actor, club) of each audit row about the chat, oldest first."""
    async with db() as session:
        rows = await session.execute(
            select(ModerationAuditEntry.actor_id, ModerationAuditEntry.action, ModerationAuditEntry.club_id)
            .where(
                ModerationAuditEntry.target_id == ids.decode(ids.Prefix.CHAT, chat_id),
                ModerationAuditEntry.chat_id == ids.decode(ids.Prefix.CHAT, chat_id),
            )
            .order_by(ModerationAuditEntry.id)
        )
        return [
            (
                action,
                ids.encode(ids.Prefix.USER, actor),
                ids.encode(ids.Prefix.CLUB, club) if club is not None else None,
            )
            for actor, action, club in rows
        ]


async def update_events(db: async_sessionmaker[AsyncSession], chat_id: str) -> list[dict[str, Any]]:
    """The ``chat.update`` outbox rows of the chat, oldest first."""
    async with db() as session:
        rows = await session.scalars(
            select(OutboxRow.payload)
            .where(OutboxRow.event_type == "chat.update", OutboxRow.payload["chat_id"].astext == chat_id)
            .order_by(OutboxRow.id)
        )
        return list(rows)


async def chat_view(client: httpx.AsyncClient, who: Account, chat_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/chats/{chat_id}", headers=who.headers)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def listed(client: httpx.AsyncClient, who: Account, chat_id: str) -> dict[str, Any]:
    response = await client.get("/v1/chats", params={"limit": 100}, headers=who.headers)
    assert response.status_code == 200, response.text
    (chat,) = [c for c in response.json()["items"] if c["id"] == chat_id]
    return dict(chat)


async def test_a_group_admin_renames_the_group(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    admin, member = await make_account(), await make_account()
    chat_id = await group_chat(client, admin, member, title="Hikers")
    renamed = await patch(client, admin, chat_id, {"title": "  Trail crew  "})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["title"] == "Trail crew"
    assert renamed.json()["read_only"] is False
    assert (await chat_view(client, member, chat_id))["title"] == "Trail crew"
    assert (await listed(client, member, chat_id))["title"] == "Trail crew"
    (event,) = await update_events(db, chat_id)
    assert event == {
        "type": "chat.update",
        "version": 1,
        "chat_id": chat_id,
        "title": "Trail crew",
        "read_only": False,
        "updated_by": admin.id,
    }
    # Renaming is not a moderation action.
    assert await audit(db, chat_id) == []
    # The same title again changes nothing and announces nothing.
    again = await patch(client, admin, chat_id, {"title": "Trail crew"})
    assert again.status_code == 200
    assert len(await update_events(db, chat_id)) == 1


async def test_members_cannot_change_a_group_and_outsiders_do_not_see_it(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    admin, member, outsider = await make_account(), await make_account(), await make_account()
    chat_id = await group_chat(client, admin, member, title="Hikers")
    for body, code in (({"title": "Mine now"}, "not_chat_admin"), ({"read_only": True}, "not_room_moderator")):
        denied = await patch(client, member, chat_id, body)
        assert denied.status_code == 403, denied.text
        assert denied.headers["content-type"].startswith("application/problem+json")
        assert denied.json()["code"] == code
    # Both fields at once need both rights; a member has neither.
    assert (await patch(client, member, chat_id, {"title": "X", "read_only": True})).status_code == 403
    hidden = await patch(client, outsider, chat_id, {"read_only": True})
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "chat_not_found"
    assert (await patch(client, admin, "chat_nope", {"read_only": True})).status_code == 404
    view = await chat_view(client, admin, chat_id)
    assert (view["title"], view["read_only"]) == ("Hikers", False)
    assert await update_events(db, chat_id) == []
    assert await audit(db, chat_id) == []


async def test_bad_bodies_are_422_and_change_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    admin, member = await make_account(), await make_account()
    chat_id = await group_chat(client, admin, member, title="Hikers")
    bad: list[object] = [
        {},
        {"title": None},
        {"title": ""},
        {"title": "   "},
        {"title": "x" * 121},
        {"title": 7},
        {"read_only": "yes"},
        {"read_only": None, "title": None},
        {"read_only": True, "muted": True},
        {"type": "direct"},
        ["read_only"],
    ]
    for body in bad:
        refused = await patch(client, admin, chat_id, body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "validation_failed", refused.text
    blank = await patch(client, admin, chat_id, {"title": "   "})
    assert [e["field"] for e in blank.json()["errors"]] == ["title"]
    malformed = await client.patch(
        f"/v1/chats/{chat_id}",
        content=b'{"read_only": tru',
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    view = await chat_view(client, admin, chat_id)
    assert (view["title"], view["read_only"]) == ("Hikers", False)
    assert await update_events(db, chat_id) == []
    assert await audit(db, chat_id) == []


async def test_direct_chats_cannot_be_changed(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    a, b, outsider = await make_account(), await make_account(), await make_account()
    chat_id = await direct_chat(client, a, b)
    for body in ({"read_only": True}, {"title": "Us"}):
        refused = await patch(client, a, chat_id, body)
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "direct_chat_unchangeable"
    assert (await patch(client, outsider, chat_id, {"read_only": True})).status_code == 404
    view = await chat_view(client, b, chat_id)
    assert (view["title"], view["read_only"]) == (None, False)
    assert (await send(client, b, chat_id, "still open")).status_code == 202


async def test_a_read_only_group_takes_messages_from_its_admins_only(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    db: async_sessionmaker[AsyncSession],
    live: NatsClient,
) -> None:
    admin, member = await make_account(), await make_account()
    chat_id = await group_chat(client, admin, member)
    seen: list[ChatLiveEvent] = []

    async def collect(msg: Msg) -> None:
        seen.append(decode_live_event(msg.data))

    await live.subscribe(f"chat.{chat_id}", cb=collect)
    await live.flush()

    closed = await patch(client, admin, chat_id, {"read_only": True})
    assert closed.status_code == 200, closed.text
    assert closed.json()["read_only"] is True
    assert (await chat_view(client, member, chat_id))["read_only"] is True
    assert (await listed(client, member, chat_id))["read_only"] is True
    assert await audit(db, chat_id) == [("chat.read_only_on", admin.id, None)]

    before = await count_messages(db, chat_id)
    refused = await send(client, member, chat_id, "can I still talk?")
    assert refused.status_code == 403
    assert refused.json()["code"] == "chat_read_only"
    assert await count_messages(db, chat_id) == before
    assert (await send(client, admin, chat_id, "Announcements only for now")).status_code == 202

    # Setting what is set already is no new moderation action.
    assert (await patch(client, admin, chat_id, {"read_only": True})).status_code == 200
    assert len(await audit(db, chat_id)) == 1

    reopened = await patch(client, admin, chat_id, {"read_only": False})
    assert reopened.json()["read_only"] is False
    assert [a for a, _, _ in await audit(db, chat_id)] == ["chat.read_only_on", "chat.read_only_off"]
    assert (await send(client, member, chat_id, "back again")).status_code == 202

    # The API published each change on the chat's live subject.
    async with asyncio.timeout(5):
        while len([e for e in seen if isinstance(e, ChatUpdated)]) < 2:
            await asyncio.sleep(0.01)
    updates = [e for e in seen if isinstance(e, ChatUpdated)]
    assert [(u.read_only, u.updated_by) for u in updates] == [(True, admin.id), (False, admin.id)]
    assert len(await update_events(db, chat_id)) == 2


async def test_club_staff_moderate_the_club_room(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, moderator, member, outsider = [await make_account() for _ in range(4)]
    club = await create_club(client, owner)
    await add_member(client, club, owner, moderator, role="moderator")
    await add_member(client, club, owner, member)
    chat = await room(client, moderator, club_id=club["id"])
    assert chat["role"] == "member"
    chat_id = chat["id"]

    denied = await patch(client, member, chat_id, {"read_only": True})
    assert denied.status_code == 403
    assert denied.json()["code"] == "not_room_moderator"
    assert (await patch(client, outsider, chat_id, {"read_only": True})).status_code == 404
    # A club room is named after its club.
    named = await patch(client, owner, chat_id, {"title": "Renamed"})
    assert named.status_code == 409
    assert named.json()["code"] == "chat_title_managed"
    assert (await chat_view(client, member, chat_id))["read_only"] is False

    closed = await patch(client, moderator, chat_id, {"read_only": True})
    assert closed.status_code == 200, closed.text
    assert closed.json()["read_only"] is True
    assert await audit(db, chat_id) == [("chat.read_only_on", moderator.id, club["id"])]
    refused = await send(client, member, chat_id, "hello?")
    assert refused.json()["code"] == "chat_read_only"
    assert (await send(client, moderator, chat_id, "Maintenance tonight")).status_code == 202
    assert (await send(client, owner, chat_id, "Thanks all")).status_code == 202

    reopened = await patch(client, owner, chat_id, {"read_only": False})
    assert reopened.status_code == 200
    assert [(a, who) for a, who, _ in await audit(db, chat_id)] == [
        ("chat.read_only_on", moderator.id),
        ("chat.read_only_off", owner.id),
    ]


async def test_the_organizer_moderates_the_event_room(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    guest = await make_account()
    event_id = await create_event(client, organizer)
    await rsvp(client, event_id, guest)
    chat_id = (await room(client, guest, event_id=event_id))["id"]

    assert (await patch(client, guest, chat_id, {"read_only": True})).json()["code"] == "not_room_moderator"
    assert (await patch(client, organizer, chat_id, {"title": "Ours"})).json()["code"] == "chat_title_managed"
    closed = await patch(client, organizer, chat_id, {"read_only": True})
    assert closed.status_code == 200, closed.text
    assert (await chat_view(client, guest, chat_id))["read_only"] is True
    assert await audit(db, chat_id) == [("chat.read_only_on", organizer.id, None)]
    assert (await send(client, guest, chat_id, "hi")).json()["code"] == "chat_read_only"
    assert (await send(client, organizer, chat_id, "Doors at 7")).status_code == 202


async def test_concurrent_switches_are_applied_and_audited_once(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, moderator, member = await make_account(), await make_account(), await make_account()
    club = await create_club(client, owner, name=f"Quiet {uuid.uuid4().hex[:6]}")
    await add_member(client, club, owner, moderator, role="moderator")
    await add_member(client, club, owner, member)
    chat_id = (await room(client, owner, club_id=club["id"]))["id"]
    results = await asyncio.gather(
        *(patch(client, who, chat_id, {"read_only": True}) for who in (owner, moderator) for _ in range(3))
    )
    assert {r.status_code for r in results} == {200}
    assert {r.json()["read_only"] for r in results} == {True}
    # Six requests, one change: one audit row and one event.
    assert [a for a, _, _ in await audit(db, chat_id)] == ["chat.read_only_on"]
    assert len(await update_events(db, chat_id)) == 1
    async with db() as session:
        assert (
            await session.scalar(
                select(func.count()).where(ModerationAuditEntry.chat_id == ids.decode(ids.Prefix.CHAT, chat_id))
            )
            == 1
        )
