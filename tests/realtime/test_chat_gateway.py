"""Chat over real gateway processes and real ``websockets`` clients, with the API process for REST."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from arq.connections import RedisSettings, create_pool
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from shared import ids
from shared.bus import SELF_PUBLISH_GRACE_SECONDS, ChatMessagePosted, OutboxRow, record, user_subject
from shared.config import Settings
from shared.domain.chat.models import Chat, ChatMessage
from shared.domain.chat.presence import Presence, presence_key
from shared.domain.chat.services import message_view
from tests.realtime.helpers import Account, GatewayProcess, create_account, issue_token
from workers.outbox import OutboxRelay
from workers.serialization import job_deserializer, job_serializer

MESSAGE_TOO_BIG = 1009
Frame = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Member:
    """A user with a token, as both REST and the gateway see them."""

    account: Account
    token: str

    @property
    def id(self) -> str:
        """The public user id."""
        return ids.encode(ids.Prefix.USER, self.account.user_id)

    @property
    def headers(self) -> dict[str, str]:
        """REST bearer header."""
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def member(db_sessions: async_sessionmaker[AsyncSession], settings: Settings) -> Any:
    """A factory of fresh members."""

    async def make() -> Member:
        account = await create_account(db_sessions)
        return Member(account, issue_token(settings, account))

    return make


@pytest.fixture
async def api(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A REST client on the real API process."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def roomy_gateway(engine_env: dict[str, str], data_dir: Path) -> Iterator[GatewayProcess]:
    """A second gateway with a generous message rate and short typing TTL, for bulk and expiry tests."""
    env = {**engine_env, "TRIBE_CHAT_MESSAGE_RATE_LIMIT": "1000", "TRIBE_CHAT_TYPING_TTL_MS": "300"}
    process = GatewayProcess(env, data_dir / "logs" / "realtime-roomy.log")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


async def open_chat(api: httpx.AsyncClient, owner: Member, *others: Member) -> str:
    """A direct chat for one other member, a group chat for more."""
    body: dict[str, object] = {"type": "direct", "participant_ids": [o.id for o in others]}
    if len(others) > 1:
        body = {**body, "type": "group", "title": "crew"}
    response = await api.post("/v1/chats", json=body, headers=owner.headers)
    assert response.status_code in (200, 201), response.text
    chat_id: str = response.json()["id"]
    return chat_id


async def recv(ws: ClientConnection, within: float = 5.0) -> Frame:
    """The next frame, parsed."""
    async with asyncio.timeout(within):
        message = await ws.recv()
    assert isinstance(message, str)
    frame: Frame = msgspec.json.decode(message)
    return frame


async def expect(ws: ClientConnection, type_: str, within: float = 5.0, **match: object) -> Frame:
    """The next frame of ``type_`` (matching ``match``), skipping others such as typing or receipts."""
    async with asyncio.timeout(within):
        while True:
            frame = await recv(ws, within)
            if frame["type"] == type_ and all(frame.get(k) == v for k, v in match.items()):
                return frame


async def socket(url: str, who: Member, resume: dict[str, int] | None = None) -> ClientConnection:
    """An acknowledged socket (and, with ``resume``, everything up to ``resume.done`` is left to read)."""
    ws = await connect(url, open_timeout=5, max_size=2**22)
    init: dict[str, object] = {"type": "connection.init", "token": who.token, "client": "test"}
    if resume is not None:
        init["resume"] = resume
    await ws.send(msgspec.json.encode(init).decode())
    ack = await recv(ws)
    assert ack["type"] == "connection.ack", ack
    return ws


def send_frame(chat_id: str, body: str, client_message_id: str | None = None) -> str:
    """A ``message.send`` frame."""
    frame = {
        "type": "message.send",
        "chat_id": chat_id,
        "client_message_id": client_message_id or uuid.uuid4().hex,
        "content": {"type": "text", "text": body},
    }
    return msgspec.json.encode(frame).decode()


async def count_messages(db: async_sessionmaker[AsyncSession], chat_id: str) -> int:
    async with db() as session:
        return (
            await session.scalar(
                select(func.count()).where(ChatMessage.chat_id == ids.decode(ids.Prefix.CHAT, chat_id))
            )
            or 0
        )


async def test_send_is_acked_and_delivered_with_the_same_id_and_seq(
    gateway: GatewayProcess, api: httpx.AsyncClient, member: Any
) -> None:
    a, b = await member(), await member()
    chat_id = await open_chat(api, a, b)
    async with await socket(gateway.ws_url, a) as wa, await socket(gateway.ws_url, b) as wb:
        await wa.send(send_frame(chat_id, "hello", "c-1"))
        ack = await expect(wa, "ack")
        assert ack["client_message_id"] == "c-1"
        assert ack["chat_id"] == chat_id
        assert ack["seq"] == 1
        assert ack["message_id"].startswith("msg_")
        assert ack["ack_token"].startswith("ack_")
        new = await expect(wb, "message.new")
        assert new["chat_id"] == chat_id
        assert new["seq"] == 1
        assert new["message"]["id"] == ack["message_id"]
        assert new["message"]["sender_id"] == a.id
        assert new["message"]["content"] == {"type": "text", "text": "hello", "attachments": []}


async def test_resend_yields_one_message_and_one_delivery(
    gateway: GatewayProcess, api: httpx.AsyncClient, member: Any, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    a, b = await member(), await member()
    chat_id = await open_chat(api, a, b)
    async with await socket(gateway.ws_url, a) as wa, await socket(gateway.ws_url, b) as wb:
        for _ in range(3):
            await wa.send(send_frame(chat_id, "once", "same-id"))
        acks = [await expect(wa, "ack") for _ in range(3)]
        assert len({ack["message_id"] for ack in acks}) == 1
        await wa.send(send_frame(chat_id, "marker", "marker"))
        seen = []
        while True:
            frame = await expect(wb, "message.new")
            seen.append(frame["message"]["client_message_id"])
            if seen[-1] == "marker":
                break
        assert seen == ["same-id", "marker"]
    assert await count_messages(db_sessions, chat_id) == 2


async def test_two_gateways_deliver_to_each_others_clients(
    gateway: GatewayProcess, roomy_gateway: GatewayProcess, api: httpx.AsyncClient, member: Any
) -> None:
    a, b = await member(), await member()
    chat_id = await open_chat(api, a, b)
    async with await socket(gateway.ws_url, a) as wa, await socket(roomy_gateway.ws_url, b) as wb:
        await wa.send(send_frame(chat_id, "across"))
        ack = await expect(wa, "ack")
        new = await expect(wb, "message.new")
        assert (new["message"]["id"], new["seq"]) == (ack["message_id"], ack["seq"])
        await wb.send(send_frame(chat_id, "and back"))
        back = await expect(wb, "ack")
        assert (await expect(wa, "message.new", seq=2))["message"]["id"] == back["message_id"]


async def test_rest_send_reaches_sockets(gateway: GatewayProcess, api: httpx.AsyncClient, member: Any) -> None:
    a, b, c = await member(), await member(), await member()
    chat_id = await open_chat(api, a, b, c)
    async with await socket(gateway.ws_url, b) as wb:
        route = f"ws://127.0.0.1:{gateway.port}/v1/chats/{chat_id}/ws"
        async with await socket(route, c) as wc:
            response = await api.post(
                f"/v1/chats/{chat_id}/messages",
                json={"client_message_id": "rest-1", "content": {"type": "text", "text": "via REST"}},
                headers=a.headers,
            )
            assert response.status_code == 202
            for ws in (wb, wc):
                new = await expect(ws, "message.new")
                assert new["message"]["id"] == response.json()["message_id"]
                assert new["message"]["content"]["text"] == "via REST"


async def test_typing_is_broadcast_and_lapses(
    roomy_gateway: GatewayProcess, api: httpx.AsyncClient, member: Any, settings: Settings
) -> None:
    a, b = await member(), await member()
    chat_id = await open_chat(api, a, b)
    redis = Redis.from_url(settings.redis_url)
    try:
        async with await socket(roomy_gateway.ws_url, a) as wa, await socket(roomy_gateway.ws_url, b) as wb:
            await wa.send(msgspec.json.encode({"type": "typing.start", "chat_id": chat_id}).decode())
            started = await expect(wb, "typing.start")
            assert started == {"type": "typing.start", "chat_id": chat_id, "user_id": a.id, "expires_in_ms": 300}
            key = f"typing:{ids.decode(ids.Prefix.CHAT, chat_id)}:{a.account.user_id}"
            assert 0 < await redis.pttl(key) <= 300
            # Nobody says stop: the TTL runs out and the gateway says it.
            stopped = await expect(wb, "typing.stop", within=3)
            assert stopped == {"type": "typing.stop", "chat_id": chat_id, "user_id": a.id}
            assert await redis.exists(key) == 0
            # An explicit stop arrives too.
            await wa.send(msgspec.json.encode({"type": "typing.start", "chat_id": chat_id}).decode())
            await expect(wb, "typing.start")
            await wa.send(msgspec.json.encode({"type": "typing.stop", "chat_id": chat_id}).decode())
            await expect(wb, "typing.stop")
    finally:
        await redis.aclose()


async def test_read_receipts_only_move_forward(gateway: GatewayProcess, api: httpx.AsyncClient, member: Any) -> None:
    a, b = await member(), await member()
    chat_id = await open_chat(api, a, b)
    async with await socket(gateway.ws_url, a) as wa, await socket(gateway.ws_url, b) as wb:
        sent = []
        for i in range(3):
            await wa.send(send_frame(chat_id, f"m{i}"))
            sent.append((await expect(wa, "ack"))["message_id"])

        def read(message_id: str) -> str:
            return msgspec.json.encode({"type": "delivery.read", "chat_id": chat_id, "message_id": message_id}).decode()

        await wb.send(read(sent[1]))
        receipt = await expect(wa, "delivery.read")
        assert receipt == {
            "type": "delivery.read",
            "chat_id": chat_id,
            "user_id": b.id,
            "message_id": sent[1],
            "seq": 2,
        }
        # Going back is ignored: the next receipt A sees is the one for message 3.
        await wb.send(read(sent[0]))
        await wb.send(read(sent[2]))
        assert (await expect(wa, "delivery.read"))["seq"] == 3
        view = (await api.get(f"/v1/chats/{chat_id}", headers=b.headers)).json()
        assert view["last_read_seq"] == 3
        assert view["unread_count"] == 0


async def test_edit_and_delete_over_the_socket_leave_tombstones(
    gateway: GatewayProcess, api: httpx.AsyncClient, member: Any
) -> None:
    a, b = await member(), await member()
    chat_id = await open_chat(api, a, b)
    async with await socket(gateway.ws_url, a) as wa, await socket(gateway.ws_url, b) as wb:
        await wa.send(send_frame(chat_id, "typo"))
        message_id = (await expect(wa, "ack"))["message_id"]
        edit = {"type": "message.edit", "chat_id": chat_id, "message_id": message_id}
        await wa.send(msgspec.json.encode({**edit, "content": {"type": "text", "text": "fixed"}}).decode())
        update = await expect(wb, "message.update")
        assert update["message"]["content"]["text"] == "fixed"
        assert update["message"]["edited_at"] is not None
        # Only the sender edits.
        await wb.send(msgspec.json.encode({**edit, "content": {"type": "text", "text": "mine now"}}).decode())
        error = await expect(wb, "error")
        assert error["code"] == "not_sender"
        assert error["ref"] == message_id

        await wa.send(
            msgspec.json.encode({"type": "message.delete", "chat_id": chat_id, "message_id": message_id}).decode()
        )
        deleted = await expect(wb, "message.delete")
        assert deleted["message"]["id"] == message_id
        assert deleted["message"]["deleted"] is True
        assert deleted["message"]["content"] is None

        # A REST delete reaches sockets the same way.
        await wb.send(send_frame(chat_id, "b's"))
        theirs = (await expect(wb, "ack"))["message_id"]
        response = await api.delete(f"/v1/chats/{chat_id}/messages/{theirs}", headers=b.headers)
        assert response.status_code == 200
        # a first sees the delete of its own message (it is subscribed too), then b's.
        assert (await expect(wa, "message.delete"))["message"]["id"] == message_id
        assert (await expect(wa, "message.delete"))["message"]["id"] == theirs
    history = (await api.get(f"/v1/chats/{chat_id}/messages", headers=a.headers)).json()["messages"]
    assert [(m["deleted"], m["content"]) for m in history] == [(True, None), (True, None)]


async def test_non_members_cannot_write_read_or_resume(
    gateway: GatewayProcess, api: httpx.AsyncClient, member: Any, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    a, b, outsider = await member(), await member(), await member()
    chat_id = await open_chat(api, a, b)
    own_chat = await open_chat(api, outsider, a)
    async with await socket(gateway.ws_url, outsider, resume={chat_id: 0}) as wo:
        refused = await expect(wo, "error")
        assert (refused["code"], refused["ref"]) == ("chat_not_found", chat_id)
        await expect(wo, "resume.done")
        await wo.send(send_frame(chat_id, "let me in", "sneak"))
        error = await expect(wo, "error")
        assert (error["code"], error["ref"]) == ("chat_not_found", "sneak")
        for frame in (
            {"type": "typing.start", "chat_id": chat_id},
            {
                "type": "message.send",
                "chat_id": "chat_nonsense",
                "client_message_id": "x",
                "content": {"type": "text", "text": "x"},
            },
        ):
            await wo.send(msgspec.json.encode(frame).decode())
            assert (await expect(wo, "error"))["code"] == "chat_not_found"
        async with await socket(gateway.ws_url, a) as wa:
            await wa.send(send_frame(chat_id, "private"))
            await expect(wa, "ack")
            await wa.send(send_frame(own_chat, "to outsider"))
            await expect(wa, "ack")
        # The first message.new the outsider sees is the one of their own chat.
        new = await expect(wo, "message.new")
        assert new["chat_id"] == own_chat
    assert await count_messages(db_sessions, chat_id) == 1


async def test_members_added_later_are_subscribed_and_removed_ones_unsubscribed(
    gateway: GatewayProcess, api: httpx.AsyncClient, member: Any
) -> None:
    admin, friend, later = await member(), await member(), await member()
    chat_id = await open_chat(api, admin, friend, await member())
    async with await socket(gateway.ws_url, later) as wl:
        added = await api.post(
            f"/v1/chats/{chat_id}/participants", json={"user_ids": [later.id]}, headers=admin.headers
        )
        assert added.status_code == 200
        assert (await expect(wl, "chat.joined")) == {"type": "chat.joined", "chat_id": chat_id}
        await api.post(
            f"/v1/chats/{chat_id}/messages",
            json={"client_message_id": "welcome", "content": {"type": "text", "text": "welcome"}},
            headers=admin.headers,
        )
        assert (await expect(wl, "message.new"))["message"]["client_message_id"] == "welcome"
        removed = await api.delete(f"/v1/chats/{chat_id}/participants/{later.id}", headers=admin.headers)
        assert removed.status_code == 204
        assert (await expect(wl, "chat.left")) == {"type": "chat.left", "chat_id": chat_id}
        await api.post(
            f"/v1/chats/{chat_id}/messages",
            json={"client_message_id": "bye", "content": {"type": "text", "text": "secret"}},
            headers=admin.headers,
        )
        with pytest.raises(TimeoutError):
            await expect(wl, "message.new", within=0.5)


async def test_message_rate_limit_refuses_and_stores_nothing(
    gateway: GatewayProcess, api: httpx.AsyncClient, member: Any, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    a, b = await member(), await member()
    chat_id = await open_chat(api, a, b)
    async with await socket(gateway.ws_url, a) as wa:
        for i in range(21):
            await wa.send(send_frame(chat_id, f"spam {i}", f"spam-{i}"))
        frames = [await expect(wa, t) for t in ["ack"] * 20]
        limited = await expect(wa, "error")
        assert limited["code"] == "rate_limited"
        assert limited["ref"] == "spam-20"
        assert len({f["message_id"] for f in frames}) == 20
        # The socket stays open.
        await wa.send('{"type": "ping"}')
        await expect(wa, "pong")
    assert await count_messages(db_sessions, chat_id) == 20


async def test_oversize_frame_closes_1009(gateway: GatewayProcess, member: Any) -> None:
    a = await member()
    ws = await socket(gateway.ws_url, a)
    await ws.send("x" * (64 * 1024 + 1))
    with pytest.raises(ConnectionClosed):
        await recv(ws)
    assert ws.close_code == MESSAGE_TOO_BIG


async def test_resume_replays_missed_messages_once_in_order(
    roomy_gateway: GatewayProcess, gateway: GatewayProcess, api: httpx.AsyncClient, member: Any
) -> None:
    a, b = await member(), await member()
    chat_id = await open_chat(api, a, b)
    async with await socket(roomy_gateway.ws_url, a) as wa:
        wb = await socket(gateway.ws_url, b)
        await wa.send(send_frame(chat_id, "before"))
        await expect(wa, "ack")
        last_seen = (await expect(wb, "message.new"))["seq"]
        await wb.close()
        # 50 messages while b is away.
        for i in range(50):
            await wa.send(send_frame(chat_id, f"missed {i}"))
        for _ in range(50):
            await expect(wa, "ack")

        async def more() -> None:
            # And more while b is resuming, so replay and live frames overlap.
            for i in range(20):
                await wa.send(send_frame(chat_id, f"live {i}"))
                await asyncio.sleep(0.005)

        sender = asyncio.create_task(more())
        async with await socket(gateway.ws_url, b, resume={chat_id: last_seen}) as wb2:
            await sender
            seqs: list[int] = []
            while len(seqs) < 70:
                frame = await recv(wb2)
                if frame["type"] == "message.new":
                    seqs.append(frame["seq"])
            assert seqs == list(range(2, 72))
            with pytest.raises(TimeoutError):
                await expect(wb2, "message.new", within=0.5)


async def test_relay_publishes_what_a_crash_left_unpublished(
    gateway: GatewayProcess,
    api: httpx.AsyncClient,
    member: Any,
    db_sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    a, b = await member(), await member()
    chat_id = await open_chat(api, a, b)
    chat_uuid = ids.decode(ids.Prefix.CHAT, chat_id)
    # The relay is driven here rather than by a worker process: nothing waits on a process start,
    # a poll interval or the grace clock, and its jobs go to a queue of this test's own.
    queue = f"tribe-test:{uuid.uuid4().hex}"
    redis = await create_pool(
        RedisSettings.from_dsn(settings.redis_url),
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        default_queue_name=queue,
    )
    nats = NatsClient()
    await nats.connect(settings.nats_url, connect_timeout=2, max_reconnect_attempts=2)
    try:
        async with await socket(gateway.ws_url, b) as wb:
            # What send_message commits, with the process dying before its publish.
            async with db_sessions.begin() as session:
                await session.execute(update(Chat).where(Chat.id == chat_uuid).values(last_seq=Chat.last_seq + 1))
                row = ChatMessage(
                    chat_id=chat_uuid,
                    seq=1,
                    sender_id=a.account.user_id,
                    client_message_id="orphan",
                    content={"type": "text", "text": "survived", "attachments": []},
                )
                session.add(row)
                await session.flush()
                await session.refresh(row)
                [outbox_id] = await record(session, ChatMessagePosted(message=message_view(row)))

            async def published_at() -> datetime | None:
                async with db_sessions() as session:
                    return await session.scalar(select(OutboxRow.published_at).where(OutboxRow.id == outbox_id))

            # Within its grace the row is left to its writer (an hour here, so no clock can end it mid-test).
            patient = OutboxRelay(sessions=db_sessions, redis=redis, nats=nats, self_publish_grace_s=3600)
            await patient.drain()
            assert await published_at() is None
            with pytest.raises(TimeoutError):
                await expect(wb, "message.new", within=0.3)

            # The writer crashed longer ago than the production grace: the relay publishes the row itself.
            async with db_sessions.begin() as session:
                await session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id == outbox_id)
                    .values(created_at=func.now() - timedelta(seconds=SELF_PUBLISH_GRACE_SECONDS + 60))
                )
            await OutboxRelay(sessions=db_sessions, redis=redis, nats=nats).drain()
            assert await published_at() is not None
            # Published and flushed to NATS before drain returned; the bound is only for the gateway's hop.
            new = await expect(wb, "message.new", within=30)
            assert new["message"]["id"] == ids.encode(ids.Prefix.MESSAGE, row.id)
            assert new["message"]["content"]["text"] == "survived"
    finally:
        await nats.close()
        await redis.delete(queue)
        await redis.aclose()


async def test_notifications_published_for_a_user_reach_their_sockets(
    gateway: GatewayProcess, member: Any, settings: Settings
) -> None:
    alice, bob = await member(), await member()
    alice_ws, bob_ws = await socket(gateway.ws_url, alice), await socket(gateway.ws_url, bob)
    frame = {"type": "notification.new", "notification": {"id": "ntf_test", "type": "badge_earned"}}
    nc = NatsClient()
    await nc.connect(settings.nats_url)
    try:
        await nc.publish(user_subject(alice.id), msgspec.json.encode(frame))
        await nc.flush()
    finally:
        await nc.close()
    assert await expect(alice_ws, "notification.new") == frame
    with pytest.raises(TimeoutError):
        await expect(bob_ws, "notification.new", within=0.5)
    await alice_ws.close()
    await bob_ws.close()


async def test_presence_lasts_while_any_socket_on_any_gateway_is_open(
    gateway: GatewayProcess, roomy_gateway: GatewayProcess, member: Any, settings: Settings
) -> None:
    who = await member()
    redis = Redis.from_url(settings.redis_url)
    presence = Presence(redis)

    async def settles(online: bool) -> None:
        async with asyncio.timeout(5):
            while await presence.is_online(who.account.user_id) != online:
                await asyncio.sleep(0.02)

    try:
        assert not await presence.is_online(who.account.user_id)
        first = await socket(gateway.ws_url, who)
        assert await presence.is_online(who.account.user_id)
        second = await socket(gateway.ws_url, who)
        other = await socket(roomy_gateway.ws_url, who)
        # One member per open socket, expiring unless refreshed on its gateway's heartbeat.
        members = await redis.zrange(presence_key(who.account.user_id), 0, -1)
        assert len(members) == 3
        await first.close()
        await second.close()
        async with asyncio.timeout(5):
            while len(await redis.zrange(presence_key(who.account.user_id), 0, -1)) != 1:
                await asyncio.sleep(0.02)
        assert await presence.is_online(who.account.user_id)
        await other.close()
        await settles(False)
    finally:
        await redis.aclose()


async def test_presence_frames_reach_chat_peers_on_first_open_and_last_close(
    gateway: GatewayProcess, api: httpx.AsyncClient, member: Any
) -> None:
    a, b, stranger = await member(), await member(), await member()
    chat_id = await open_chat(api, a, b)
    async with await socket(gateway.ws_url, b) as wb, await socket(gateway.ws_url, stranger) as ws:
        first = await socket(gateway.ws_url, a)
        online = await expect(wb, "presence")
        assert online == {"type": "presence", "chat_id": chat_id, "user_id": a.id, "status": "online"}
        # A second socket of a user already online says nothing; the next frame b sees is a's message.
        second = await socket(gateway.ws_url, a)
        await second.send(send_frame(chat_id, "hello"))
        assert (await recv(wb))["type"] == "message.new"
        await first.close()
        await second.send(send_frame(chat_id, "still here"))
        assert (await recv(wb))["type"] == "message.new"
        await second.close()
        offline = await expect(wb, "presence")
        assert offline == {"type": "presence", "chat_id": chat_id, "user_id": a.id, "status": "offline"}
        # Someone sharing no chat with a hears nothing of it.
        await ws.send(msgspec.json.encode({"type": "ping"}).decode())
        assert (await recv(ws))["type"] == "pong"
