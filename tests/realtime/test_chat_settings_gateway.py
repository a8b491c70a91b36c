"""Chat settings (``PATCH /v1/chats/{id}``) as sockets on a real gateway see them: ``chat.update`` and refusals."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import ClientConnection

from shared import ids
from shared.bus import ChatUpdated, record
from shared.domain.moderation.models import ModerationAuditEntry
from tests.realtime.helpers import GatewayProcess
from tests.realtime.test_chat_gateway import api, count_messages, expect, member, open_chat, recv, send_frame, socket
from tests.support import start_process, stop_process

__all__ = ["api", "member"]


async def audit_actions(db: async_sessionmaker[AsyncSession], chat_id: str) -> list[tuple[str, uuid.UUID]]:
    async with db() as session:
        rows = await session.execute(
            select(ModerationAuditEntry.action, ModerationAuditEntry.actor_id)
            .where(ModerationAuditEntry.chat_id == ids.decode(ids.Prefix.CHAT, chat_id))
            .order_by(ModerationAuditEntry.id)
        )
        return [(action, actor) for action, actor in rows]


async def test_read_only_reaches_sockets_and_refuses_members_over_the_socket(
    gateway: GatewayProcess, api: httpx.AsyncClient, member: Any, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    admin, b, c = await member(), await member(), await member()
    chat_id = await open_chat(api, admin, b, c)
    route = f"ws://127.0.0.1:{gateway.port}/v1/chats/{chat_id}/ws"
    async with (
        await socket(gateway.ws_url, admin) as wa,
        await socket(gateway.ws_url, b) as wb,
        await socket(route, c) as wc,
    ):
        closed = await api.patch(f"/v1/chats/{chat_id}", json={"read_only": True}, headers=admin.headers)
        assert closed.status_code == 200, closed.text
        expected = {
            "type": "chat.update",
            "chat_id": chat_id,
            "title": "crew",
            "read_only": True,
            "updated_by": admin.id,
        }
        for ws in (wa, wb, wc):
            assert await expect(ws, "chat.update") == expected
        assert await audit_actions(db_sessions, chat_id) == [("chat.read_only_on", admin.account.user_id)]

        before = await count_messages(db_sessions, chat_id)
        await wb.send(send_frame(chat_id, "let me in", "refused-1"))
        error = await expect(wb, "error")
        assert (error["code"], error["ref"]) == ("chat_read_only", "refused-1")
        assert await count_messages(db_sessions, chat_id) == before

        # The moderator still posts, and members receive it.
        await wa.send(send_frame(chat_id, "Announcement", "announce-1"))
        ack = await expect(wa, "ack")
        for ws in (wb, wc):
            new = await expect(ws, "message.new")
            assert new["message"]["id"] == ack["message_id"]
            assert new["message"]["content"]["text"] == "Announcement"

        reopened = await api.patch(f"/v1/chats/{chat_id}", json={"read_only": False}, headers=admin.headers)
        assert reopened.status_code == 200
        assert (await expect(wb, "chat.update"))["read_only"] is False
        await wb.send(send_frame(chat_id, "thanks", "open-again"))
        assert (await expect(wb, "ack"))["client_message_id"] == "open-again"
        assert (await expect(wc, "message.new"))["message"]["client_message_id"] == "open-again"
    assert [a for a, _ in await audit_actions(db_sessions, chat_id)] == ["chat.read_only_on", "chat.read_only_off"]


async def test_a_rename_reaches_members_and_a_refused_change_sends_nothing(
    gateway: GatewayProcess, api: httpx.AsyncClient, member: Any
) -> None:
    admin, b, c = await member(), await member(), await member()
    chat_id = await open_chat(api, admin, b, c)
    async with await socket(gateway.ws_url, b) as wb:
        denied = await api.patch(f"/v1/chats/{chat_id}", json={"read_only": True}, headers=b.headers)
        assert denied.status_code == 403
        renamed = await api.patch(f"/v1/chats/{chat_id}", json={"title": "Night owls"}, headers=admin.headers)
        assert renamed.status_code == 200
        # The first chat.update is the rename: the refused change emitted none.
        frame = await expect(wb, "chat.update")
        assert (frame["title"], frame["read_only"], frame["updated_by"]) == ("Night owls", False, admin.id)
        # Nothing changed, nothing announced: the next frame is the message that follows.
        same = await api.patch(f"/v1/chats/{chat_id}", json={"title": "Night owls"}, headers=admin.headers)
        assert same.status_code == 200
        await api.post(
            f"/v1/chats/{chat_id}/messages",
            json={"client_message_id": "after-rename", "content": {"type": "text", "text": "hoot"}},
            headers=c.headers,
        )
        nxt = await _next_of(wb, {"chat.update", "message.new"})
        assert nxt["type"] == "message.new"
        assert nxt["message"]["client_message_id"] == "after-rename"


async def _next_of(ws: ClientConnection, types: set[str]) -> dict[str, Any]:
    """The next frame whose type is one of ``types`` (presence and the like are skipped)."""
    while True:
        frame = await recv(ws)
        if frame["type"] in types:
            return frame


async def test_the_relay_publishes_a_chat_update_a_crash_left_unpublished(
    gateway: GatewayProcess,
    api: httpx.AsyncClient,
    member: Any,
    db_sessions: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
    tmp_path: Path,
) -> None:
    admin, b, c = await member(), await member(), await member()
    chat_id = await open_chat(api, admin, b, c)
    async with await socket(gateway.ws_url, b) as wb:
        # The outbox row of a committed change whose writer died before publishing it.
        event = ChatUpdated(chat_id=chat_id, title="crew", read_only=True, updated_by=admin.id)
        async with db_sessions.begin() as session:
            await record(session, event, wake_relay=False)
        with pytest.raises(TimeoutError):
            await expect(wb, "chat.update", within=0.3)
        worker = start_process(["shared.cli", "worker"], engine_env, tmp_path / "worker.log")
        try:
            frame = await expect(wb, "chat.update", within=20)
            assert (frame["chat_id"], frame["read_only"], frame["updated_by"]) == (chat_id, True, admin.id)
        finally:
            stop_process(worker)
