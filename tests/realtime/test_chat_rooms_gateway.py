"""Event rooms and moderation over a real gateway, the API process and a real worker (outbox relay)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.users.models import User
from tests.realtime.helpers import GatewayProcess
from tests.realtime.test_chat_gateway import Member, api, expect, member, open_chat, socket
from tests.support import start_process, stop_process

__all__ = ["api", "member"]


@pytest.fixture(scope="module")
def relay(engine_env: dict[str, str], data_dir: Path) -> Iterator[None]:
    """A worker process: its outbox relay publishes room membership changes to the gateways."""
    log = data_dir / "logs" / "worker-rooms.log"
    process = start_process(["shared.cli", "worker"], engine_env, log)
    try:
        yield
    finally:
        stop_process(process)


async def grant(db: async_sessionmaker[AsyncSession], who: Member, role: str) -> None:
    async with db.begin() as session:
        await session.execute(update(User).where(User.id == who.account.user_id).values(roles=["user", role]))


async def published_event(api: httpx.AsyncClient, organizer: Member) -> str:
    start = "2031-06-01T18:00:00+00:00"
    body = {
        "title": f"Night Run {uuid.uuid4().hex[:6]}",
        "description": "Laps by the lake",
        "start_time": start,
        "end_time": "2031-06-01T20:00:00+00:00",
        "timezone": "UTC",
        "location": {"name": "Lake", "latitude": 30.2, "longitude": -97.7, "city": "Austin"},
        "capacity": 10,
        "tags": ["running"],
        "ticketing": {"type": "free", "price_cents": 0, "currency": "USD"},
    }
    created = await api.post("/v1/events", json=body, headers=organizer.headers)
    assert created.status_code == 201, created.text
    event_id: str = created.json()["id"]
    published = await api.post(f"/v1/events/{event_id}/publish", headers=organizer.headers)
    assert published.status_code == 200, published.text
    return event_id


async def event_room(api: httpx.AsyncClient, who: Member, event_id: str) -> str:
    listed = await api.get("/v1/chats", params={"limit": 100}, headers=who.headers)
    (chat_id,) = [c["id"] for c in listed.json()["items"] if c["event_id"] == event_id]
    return str(chat_id)


def text(body: str) -> dict[str, object]:
    return {"client_message_id": uuid.uuid4().hex, "content": {"type": "text", "text": body}}


async def test_a_confirmed_rsvp_brings_the_event_chat_to_an_open_socket(
    gateway: GatewayProcess,
    relay: None,
    api: httpx.AsyncClient,
    member: Any,
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    organizer, guest = await member(), await member()
    await grant(db_sessions, organizer, "organizer")
    event_id = await published_event(api, organizer)
    chat_id = await event_room(api, organizer, event_id)
    async with await socket(gateway.ws_url, guest) as ws:
        going = await api.post(
            f"/v1/events/{event_id}/rsvp", json={"status": "going", "guest_count": 0}, headers=guest.headers
        )
        assert going.json()["status"] == "confirmed"
        await expect(ws, "chat.joined", within=15, chat_id=chat_id)
        sent = await api.post(f"/v1/chats/{chat_id}/messages", json=text("Bring water"), headers=organizer.headers)
        assert sent.status_code == 202
        new = await expect(ws, "message.new", chat_id=chat_id)
        assert new["message"]["id"] == sent.json()["message_id"]

        gone = await api.post(
            f"/v1/events/{event_id}/rsvp", json={"status": "not_going", "guest_count": 0}, headers=guest.headers
        )
        assert gone.status_code == 200
        await expect(ws, "chat.left", within=15, chat_id=chat_id)


async def test_a_guest_who_connects_after_confirming_gets_the_event_chat(
    gateway: GatewayProcess, api: httpx.AsyncClient, member: Any, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    organizer, guest = await member(), await member()
    await grant(db_sessions, organizer, "organizer")
    event_id = await published_event(api, organizer)
    going = await api.post(
        f"/v1/events/{event_id}/rsvp", json={"status": "going", "guest_count": 0}, headers=guest.headers
    )
    assert going.json()["status"] == "confirmed"
    chat_id = await event_room(api, guest, event_id)
    async with await socket(gateway.ws_url, guest) as ws:
        sent = await api.post(f"/v1/chats/{chat_id}/messages", json=text("See you"), headers=organizer.headers)
        new = await expect(ws, "message.new", chat_id=chat_id)
        assert new["message"]["id"] == sent.json()["message_id"]


async def test_approving_a_flagged_message_delivers_it_with_a_moderation_frame(
    gateway: GatewayProcess, api: httpx.AsyncClient, member: Any, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    mod, a, b, c = await member(), await member(), await member(), await member()
    await grant(db_sessions, mod, "moderator")
    term = f"glorp{uuid.uuid4().hex[:8]}"
    added = await api.post("/v1/moderation/blocklist", json={"term": term, "mode": "flag"}, headers=mod.headers)
    assert added.status_code == 201, added.text
    chat_id = await open_chat(api, a, b, c)
    async with await socket(gateway.ws_url, b) as wb:
        flagged = await api.post(f"/v1/chats/{chat_id}/messages", json=text(f"a {term}"), headers=a.headers)
        flagged_id = flagged.json()["message_id"]
        clean = await api.post(f"/v1/chats/{chat_id}/messages", json=text("clean"), headers=a.headers)
        # The flagged message never reached the other member; the next one did.
        first = await expect(wb, "message.new", chat_id=chat_id)
        assert first["message"]["id"] == clean.json()["message_id"]

        cases = (await api.get("/v1/moderation/cases", headers=mod.headers)).json()["items"]
        (case,) = [x for x in cases if x["message_id"] == flagged_id]
        resolved = await api.post(
            f"/v1/moderation/cases/{case['id']}/resolve", json={"action": "approve"}, headers=mod.headers
        )
        assert resolved.status_code == 200
        shown = await expect(wb, "message.new", chat_id=chat_id)
        assert shown["message"]["id"] == flagged_id
        assert shown["message"]["moderation_status"] == "visible"
        frame = await expect(wb, "system.moderation", chat_id=chat_id)
        assert frame["message_id"] == flagged_id
        assert frame["action"] == "approved"

        # A report removed by the moderator: tombstone and frame.
        clean_id = clean.json()["message_id"]
        report = await api.post(
            f"/v1/chats/{chat_id}/messages/{clean_id}/report",
            json={"reason": "spam"},
            headers=c.headers,
        )
        assert report.status_code == 201
        removed = await api.post(
            f"/v1/moderation/cases/{report.json()['id']}/resolve", json={"action": "remove"}, headers=mod.headers
        )
        assert removed.status_code == 200
        tombstone = await expect(wb, "message.delete", chat_id=chat_id)
        assert tombstone["message"]["deleted"] is True
        frame = await expect(wb, "system.moderation", chat_id=chat_id)
        assert frame["action"] == "removed"
        assert frame["message_id"] == clean_id
